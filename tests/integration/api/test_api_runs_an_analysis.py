"""One analysis, start to finish, through the API: the `analyze` deployment is served
by `cropai serve` in its own process against Prefect's harness, the flow runs on a real
Dask LocalCluster, and the map comes back over HTTP."""

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from cropai.config import Settings
from cropai.services import services
from tests.analysis_fixtures import AOI, END, START, ingested_season, upload_crop_fields
from tests.api_fixtures import make_client, new_account

DEADLINE_S = 420


@pytest.fixture
def served_settings(api_app_settings: Settings) -> Settings:
    return api_app_settings.model_copy(update={"analyze_deployment": "analyze/analyze", "dask_workers": 1})


@pytest.fixture
def deployment_server(served_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """`cropai serve` as an operator starts it, with the API's settings in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROPAI_")}
    for name, value in served_settings:
        env[f"CROPAI_{name.upper()}"] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    env.update(PREFECT_API_URL=served_settings.prefect_api_url, PREFECT_RUNNER_POLL_FREQUENCY="1")
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-c", "from cropai.cli import main; main()", "serve", "--no-schedules"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def poll_until_final(client: TestClient, headers: dict[str, str], analysis_id: str, serve_log: Path) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        body = client.get(f"/analyses/{analysis_id}", headers=headers).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(1)
    raise AssertionError(f"analysis still {body['status']} after {DEADLINE_S} s; serve log:\n{serve_log.read_text()[-3000:]}")


def test_an_analysis_submitted_through_the_api_completes_with_downloadable_results(
    served_settings: Settings, deployment_server: subprocess.Popen, tmp_path: Path
) -> None:
    svc = services(served_settings)
    season = ingested_season(svc, tmp_path / "season")
    with make_client(served_settings) as client:
        analyst = new_account(client, served_settings)
        truth = upload_crop_fields(svc, season.made, analyst.id)  # field id -> true class
        submitted = client.post("/analyses", headers=analyst.headers, json={
            "name": "through the API", "aoi": AOI, "start_date": str(START), "end_date": str(END),
        })  # fmt: skip
        assert submitted.status_code == 202, submitted.text
        done = poll_until_final(client, analyst.headers, submitted.json()["id"], tmp_path / "serve.log")
        assert done["status"] == "completed", done["status_reason"]
        assert done["model_version"] == "cropnet@1.0.0" and done["batches_done"] == done["batches_total"] >= 1
        assert sum(c["area_ha"] for c in done["classes"]) == pytest.approx(done["aoi_area_ha"], rel=0.05)

        cog = client.get(done["links"]["map"], headers=analyst.headers)
        assert cog.status_code == 200 and cog.headers["content-type"] == "image/tiff"
        (tmp_path / "map.tif").write_bytes(cog.content)
        with rasterio.open(tmp_path / "map.tif") as src:
            assert src.count == 2 and src.crs.to_epsg() == 32631 and src.colormap(1)

        quicklook = client.get(done["links"]["quicklook"], headers=analyst.headers)
        assert Image.open(io.BytesIO(quicklook.content)).format == "PNG"

        fields = client.get(done["links"]["fields"], headers=analyst.headers).json()
        assert sorted(f["id"] for f in fields["features"]) == sorted(truth)  # the analyst's fields, not others'
        right = sum(f["properties"]["class_id"] == truth[f["id"]] for f in fields["features"])
        assert right >= 0.8 * len(fields["features"])
        assert all(0 < f["properties"]["mean_confidence"] <= 1 for f in fields["features"])
