"""One working day of the system, in order, over HTTP: an admin ingests a season of
scenes dropped in the S3 inbox, an analyst uploads fields and maps them; a Dask worker
dies during a second analysis; a damaged model version fails a third with its reason;
Ctrl-C stops every process."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import redis
from distributed import Client
from PIL import Image

from cropai.cli.supervisor import signal_group
from tests.analysis_fixtures import AOI, AREA, END, START, crop_parcels
from tests.e2e.conftest import POLL_DEADLINE_S, REDIS, Season, System, new_user, stop

ANALYST = "analyst@example.org"
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default" / "cropnet" / "1.0.0"


@pytest.fixture(scope="module")
def day(admin: dict[str, str], http: httpx.Client) -> dict:
    """What the steps hand on to each other: the analyst's headers, the first map."""
    return {"analyst": new_user(http, admin, ANALYST, "analyst")}


def final(http: httpx.Client, headers: dict[str, str], analysis_id: str, system: System) -> dict:
    deadline = time.monotonic() + POLL_DEADLINE_S
    while time.monotonic() < deadline:
        body = http.get(f"/analyses/{analysis_id}", headers=headers).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(1)
    raise AssertionError(
        f"analysis {analysis_id} still {body['status']} after {POLL_DEADLINE_S} s:\n{system.printed()}"
    )


def submit(http: httpx.Client, headers: dict[str, str], name: str, model: str = "cropnet@latest") -> dict:
    response = http.post(
        "/analyses",
        headers=headers,
        json={
            "name": name,
            "aoi": AOI,
            "start_date": str(START),
            "end_date": str(END),
            "model": model,
        },
    )
    assert response.status_code == 202, response.text
    return response.json()


def read_map(content: bytes) -> np.ndarray:
    with rasterio.MemoryFile(content) as memory, memory.open() as src:
        assert src.count == 2 and src.crs.to_epsg() == 32631 and src.colormap(1)
        return src.read()


def test_an_ingested_season_is_mapped_and_downloaded(
    system: System, http: httpx.Client, day: dict, season: Season
) -> None:
    run, made = season.ingest_run, season.made
    assert (run["status"], run["ingested"], run["rejected"]) == ("completed", len(made.scenes), 0), run
    scenes = http.get("/scenes", headers=day["analyst"], params={"bbox": ",".join(map(str, AREA)), "limit": 200})
    assert scenes.json()["total"] == len(made.scenes)

    # The analyst uploads the parcels inside the AOI and maps the season.
    parcels = crop_parcels(made)
    uploaded = http.post("/fields", headers=day["analyst"], json={"type": "FeatureCollection", "features": parcels})
    assert uploaded.status_code == 201, uploaded.text
    truth = dict(zip(uploaded.json()["ids"], (f["properties"]["class_id"] for f in parcels), strict=True))

    done = final(http, day["analyst"], submit(http, day["analyst"], "season 2025")["id"], system)
    assert done["status"] == "completed", done["status_reason"]
    assert done["model_version"] == "cropnet@1.0.0" and done["batches_done"] == done["batches_total"] >= 1
    assert sum(c["area_ha"] for c in done["classes"]) == pytest.approx(done["aoi_area_ha"], rel=0.05)
    # The exact scene versions it read are part of the answer, as the catalogue holds them.
    catalogued = {(s["scene_id"], s["version"]): s["content_hash"] for s in scenes.json()["items"]}
    assert done["input_scenes"] and all(
        catalogued[(used["scene_id"], used["version"])] == used["content_hash"] for used in done["input_scenes"]
    )

    cog = http.get(done["links"]["map"], headers=day["analyst"])
    assert cog.status_code == 200 and cog.headers["content-type"] == "image/tiff"
    day["first_map"] = read_map(cog.content)
    quicklook = http.get(done["links"]["quicklook"], headers=day["analyst"])
    assert Image.open(io.BytesIO(quicklook.content)).format == "PNG"
    fields = http.get(done["links"]["fields"], headers=day["analyst"]).json()["features"]
    assert sorted(f["id"] for f in fields) == sorted(truth)
    right = sum(f["properties"]["class_id"] == truth[f["id"]] for f in fields)
    assert right >= 0.8 * len(fields), f"{right} of {len(fields)} fields right"


def test_a_dask_worker_killed_mid_analysis_is_restarted_and_the_analysis_completes(
    system: System, http: httpx.Client, day: dict
) -> None:
    if "first_map" not in day:
        pytest.skip("needs the season mapped by the test before")
    analysis = submit(http, day["analyst"], "while a worker dies")
    with Client(system.ports.scheduler_address, timeout=30) as dask:
        deadline, killed = time.monotonic() + 300, None
        while killed is None and time.monotonic() < deadline:
            busy = [worker for worker, tasks in dask.processing().items() if tasks]
            if busy:
                # The worker's parent is its `dask worker` process, leader of its process group.
                leader = dask.run(os.getppid, workers=[busy[0]])[busy[0]]
                os.killpg(leader, signal.SIGKILL)
                killed = leader
            time.sleep(0.05)
    assert killed is not None, "no batch was ever seen running"
    done = final(http, day["analyst"], analysis["id"], system)
    assert done["status"] == "completed", done["status_reason"]
    assert np.array_equal(read_map(http.get(done["links"]["map"], headers=day["analyst"]).content), day["first_map"])
    assert "exited   dask-worker-" in system.printed() and "restarting (1 of" in system.printed()


def test_a_damaged_model_version_fails_with_its_reason_in_the_api_and_in_prefect(
    system: System, http: httpx.Client, day: dict, tmp_path: Path
) -> None:
    # An operator registers cropnet@1.0.1, whose weights are then damaged in the store.
    folder = tmp_path / "cropnet-1.0.1"
    shutil.copytree(DEFAULT_MODEL, folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "version": "1.0.1"}))
    system.cli("models", "register", str(folder))
    system.s3.put_object(system.bucket, "models/cropnet/1.0.1/weights.pt", io.BytesIO(b"not a model"), 11)

    analysis = submit(http, day["analyst"], "with a damaged model", model="cropnet@1.0.1")
    done = final(http, day["analyst"], analysis["id"], system)
    assert done["status"] == "failed"
    assert "cropnet@1.0.1" in done["status_reason"] and "changed or damaged" in done["status_reason"]
    flow_run = httpx.get(f"{system.ports.prefect_api}/flow_runs/{done['flow_run_id']}").json()
    assert flow_run["state"]["type"] == "FAILED"
    assert done["status_reason"] in flow_run["state"]["message"]


def test_the_dask_dashboard_is_printed_and_shows_its_bokeh_pages(system: System) -> None:
    url = f"http://127.0.0.1:{system.ports.dashboard}/status"
    assert url in system.printed()
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "bokeh-" in page.text  # the dashboard itself, not "Dask needs bokeh"


@pytest.mark.skipif(not REDIS, reason="no redis-server: install Debian's redis-server")
def test_with_redis_the_stack_starts_one_and_the_api_counts_logins_there(system: System, admin: dict) -> None:
    match = re.search(r"ready\s+redis\s+(redis://\S+)", system.printed())
    assert match, system.printed()
    httpx.post(f"{system.ports.api_url}/auth/token", data={"username": "nobody@example.org", "password": "x"})
    keys = redis.Redis.from_url(match.group(1)).keys("cropai-limits*")
    assert keys  # the login limit's window lives in the stack's Redis


def test_ctrl_c_stops_every_process(system: System) -> None:
    pids = system.program_pids()
    assert len(pids) >= 6  # Prefect, scheduler, two workers, deployments, API
    assert stop(system) == 0, system.printed()
    assert [pid for pid in pids if signal_group(pid, 0)] == []
    for name in ("deployments", "api", "dask-scheduler", "prefect-server"):
        assert f"stopped  {name}" in system.printed()
