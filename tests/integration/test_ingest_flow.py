"""The ingest_scenes flow under Prefect's test harness, on SQLite and PostgreSQL:
what operators see (states, artifacts, ingest_runs rows), every kind of source, and
what a run of the deployment may read compared with a direct call (`cropai ingest`)."""

import itertools
import json
import uuid
from pathlib import Path

import pystac
import pytest
import rasterio
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName
from prefect.client.schemas.objects import State
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_engine import run_flow
from sqlalchemy import select

from cropai.config import Settings
from cropai.db import IngestRun, RunStatus, Scene
from cropai.ingest import IngestSummary
from cropai.services import services
from cropai.sources import StacSearch
from flows.ingest import ingest_scenes
from tests.conftest import free_port
from tests.scene_files import band_assets, corrupt_file, small_scene_set, stac_item
from tests.stac_api import PUBLIC, catalog_answer, item_document, public_hosts, serve_stac_api


def run_record(settings: Settings, state: State) -> IngestRun:
    """The ingest_runs row of the flow run that ended in ``state``."""
    with services(settings).sessions() as session:
        return session.scalars(select(IngestRun).where(IngestRun.flow_run_id == state.state_details.flow_run_id)).one()


def ingest(source: str, search: StacSearch | None = None) -> IngestSummary:
    """Call the flow as `cropai ingest` does: a run that fails raises, one that completes gives its summary."""
    summary = ingest_scenes(source, search)
    assert isinstance(summary, IngestSummary)
    return summary


def completed_summary(state: State) -> IngestSummary:
    summary = state.result()
    assert isinstance(summary, IngestSummary)
    return summary


def failure(state: State) -> str:
    """The message of a run that failed."""
    assert state.is_failed() and state.message is not None
    return state.message


def catalogued(settings: Settings) -> list[Scene]:
    with services(settings).sessions() as session:
        return list(session.scalars(select(Scene).order_by(Scene.scene_id)))


@pytest.fixture
def loopback_stac(flow_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Flow settings that let STAC sources on loopback through, for the test STAC API."""
    monkeypatch.setenv("CROPAI_STAC_ALLOW_PRIVATE", "true")
    return flow_settings.model_copy(update={"stac_allow_private": True})


def run_of_the_deployment(source: str) -> State:
    """Run the flow as a worker runs a flow run of its deployment (one the API, the schedule
    or the Prefect UI created)."""
    deployment = ingest_scenes.to_deployment(name="bounds-tests")
    assert isinstance(deployment, RunnerDeployment)  # not a coroutine: called outside an event loop
    deployment_id = deployment.apply()
    assert isinstance(deployment_id, uuid.UUID)
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(deployment_id, parameters={"source": source})
    state = run_flow(ingest_scenes, flow_run=flow_run, return_type="state")
    assert isinstance(state, State)
    return state


def test_run_with_a_bad_file_completes_with_a_summary_and_artifact(flow_settings: Settings, tmp_path: Path) -> None:
    small_scene_set(tmp_path / "set", scenes=2, file_format="gtiff")
    corrupt_file(tmp_path / "set" / "scenes" / "broken.tif")

    state = ingest_scenes(str(tmp_path / "set" / "scenes"), return_state=True)

    assert state.is_completed()
    summary = completed_summary(state)
    assert (summary.found, summary.ingested, summary.skipped, summary.rejected) == (3, 2, 0, 1)
    run = run_record(flow_settings, state)
    assert (run.status, run.found, run.ingested, run.rejected) == (RunStatus.completed, 3, 2, 1)
    assert "broken.tif" in run.rejections[0]["file"] and "not a readable raster" in run.rejections[0]["reason"]
    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(flow_run_filter=flow_runs)
    assert isinstance(artifact.data, str)  # a table artifact keeps its rows as JSON
    rows = json.loads(artifact.data)
    assert {"figure": "rejected", "value": 1} in rows
    assert any("broken.tif" in row["figure"] and "not a readable raster" in row["value"] for row in rows)


def test_unreadable_source_fails_the_run_and_says_why(flow_settings: Settings, tmp_path: Path) -> None:
    state = ingest_scenes(str(tmp_path / "no-such-folder"), return_state=True)
    assert "does not exist" in failure(state)
    run = run_record(flow_settings, state)
    assert run.status == RunStatus.failed and "does not exist" in (run.error or "")


def test_rerun_skips_every_scene_already_catalogued(flow_settings: Settings, tmp_path: Path) -> None:
    small_scene_set(tmp_path / "set", scenes=2)
    ingest(str(tmp_path / "set" / "scenes"))
    summary = ingest(str(tmp_path / "set" / "scenes"))
    assert (summary.ingested, summary.skipped) == (0, 2)
    assert len(catalogued(flow_settings)) == 2


def test_scenes_run_no_more_at_once_than_the_setting_allows(
    flow_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROPAI_INGEST_CONCURRENCY", "1")
    small_scene_set(tmp_path / "set", scenes=3)
    state = ingest_scenes(str(tmp_path / "set" / "scenes"), return_state=True)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="ingest S2")),
        )
    spans = sorted((r.start_time, r.end_time) for r in runs if r.start_time and r.end_time)
    assert len(spans) == 3
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


def _catalog_on_disk(tmp_path: Path, scenes: int = 2) -> tuple[Path, list]:
    made = small_scene_set(tmp_path / "set", scenes=scenes)
    catalog = pystac.Catalog("synthetic-s2", "Sentinel-2 L2A-like items with one asset per band")
    for scene in made.scenes:
        files = band_assets(scene, tmp_path / "assets")
        catalog.add_item(stac_item(scene, {band: str(path) for band, path in files.items()}))
    catalog.normalize_hrefs(str(tmp_path / "catalog"))
    catalog.save(pystac.CatalogType.ABSOLUTE_PUBLISHED)
    return tmp_path / "catalog" / "catalog.json", made.scenes


def test_static_stac_catalog_with_per_band_assets_is_stacked_at_10_m(flow_settings: Settings, tmp_path: Path) -> None:
    catalog, made = _catalog_on_disk(tmp_path)
    summary = ingest(str(catalog))
    assert summary.ingested == 2
    rows = catalogued(flow_settings)
    assert [r.scene_id for r in rows] == sorted(s.scene_id for s in made)
    store = services(flow_settings).store
    for row in rows:
        assert row.bands == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"]
        with rasterio.open(store.gdal_path(row.object_key)) as cog:
            assert cog.res == (10.0, 10.0) and cog.count == 11


def _served_items(tmp_path: Path, port: int) -> tuple[list[dict], list]:
    """Items whose assets are served over HTTP by the test API."""
    made = small_scene_set(tmp_path / "set", scenes=3)
    files = tmp_path / "files"
    items = []
    for scene in made.scenes:
        assets = band_assets(scene, files)
        hrefs = {band: f"http://127.0.0.1:{port}/files/{path.name}" for band, path in assets.items()}
        items.append(stac_item(scene, hrefs).to_dict())
    return items, made.scenes


def test_stac_api_search_ingests_only_matching_items(loopback_stac: Settings, tmp_path: Path) -> None:
    port = free_port()
    items, made = _served_items(tmp_path, port)
    clearest = min(made, key=lambda s: s.cloud_fraction)
    with serve_stac_api(port, items, tmp_path / "files") as url:
        search = StacSearch(
            bbox=(1.60, 48.20, 1.61, 48.21),
            start=clearest.acquired_at.date(),
            end=clearest.acquired_at.date(),
            max_cloud_cover=100 * clearest.cloud_fraction + 0.01,
        )
        summary = ingest(url, search)
        assert (summary.found, summary.ingested) == (1, 1)
        # Another day's window finds nothing.
        later = search.model_copy(update={"start": made[-1].acquired_at.date().replace(year=2026), "end": None})
        assert ingest(url, later).found == 0
    assert [r.scene_id for r in catalogued(loopback_stac)] == [clearest.scene_id]
    assert catalogued(loopback_stac)[0].source_uri  # traceable to the item


def test_static_catalog_over_http(loopback_stac: Settings, tmp_path: Path) -> None:
    port = free_port()
    items, _made = _served_items(tmp_path, port)
    catalog = {
        "type": "Catalog",
        "id": "remote",
        "stac_version": "1.0.0",
        "description": "served catalog",
        "links": [{"rel": "item", "href": f"./{item['id']}.json", "type": "application/json"} for item in items],
    }
    (tmp_path / "files" / "catalog.json").write_text(json.dumps(catalog))
    for item in items:
        (tmp_path / "files" / f"{item['id']}.json").write_text(json.dumps(item))
    with serve_stac_api(port, items, tmp_path / "files") as url:
        summary = ingest(f"{url}/files/catalog.json")
    assert summary.ingested == 3


def test_stac_api_that_does_not_answer_fails_the_run(loopback_stac: Settings) -> None:
    state = ingest_scenes(f"http://127.0.0.1:{free_port()}", search=StacSearch(), return_state=True)
    assert "STAC API search" in failure(state)


def test_a_stac_source_on_loopback_is_refused_unless_private_hosts_are_allowed(
    flow_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    items, _ = _served_items(tmp_path, port)
    with serve_stac_api(port, items, tmp_path / "files") as url:
        state = ingest_scenes(url, search=StacSearch(), return_state=True)
    assert "a loopback address" in failure(state)
    assert "CROPAI_STAC_ALLOW_PRIVATE=true" in failure(state) and catalogued(flow_settings) == []


# --- a run of the deployment reads only inside the roots ------------------------------------


@pytest.fixture
def root(flow_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The one folder CROPAI_INGEST_ROOTS names, as the flow run reads it."""
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("CROPAI_INGEST_ROOTS", str(tmp_path / "root"))
    return tmp_path / "root"


def test_a_deployment_run_refuses_a_server_file_and_keeps_nothing_of_it(flow_settings: Settings, root: Path) -> None:
    state = run_of_the_deployment("/proc/self/environ")
    assert "CROPAI_INGEST_ROOTS" in failure(state) and str(root) in failure(state)
    run = run_record(flow_settings, state)
    assert run.status == RunStatus.failed and run.error is not None and "CROPAI_SECRET_KEY" not in run.error
    assert services(flow_settings).store.list("") == []


def test_a_deployment_run_rejects_a_link_out_of_its_root_without_reading_it(
    flow_settings: Settings, root: Path, tmp_path: Path
) -> None:
    small_scene_set(root / "set", scenes=1)
    (root / "set" / "scenes" / "environ.tif").symlink_to("/proc/self/environ")
    state = run_of_the_deployment(str(root / "set" / "scenes"))
    assert state.is_completed()
    run = run_record(flow_settings, state)
    assert (run.ingested, run.rejected) == (1, 1)
    [rejection] = run.rejections
    assert rejection["file"].endswith("environ.tif") and "outside the folders ingestion may read" in rejection["reason"]
    assert rejection["note"] is None and services(flow_settings).store.list("quarantine/") == []


def test_a_deployment_run_ingests_a_folder_inside_its_root(flow_settings: Settings, root: Path) -> None:
    small_scene_set(root / "set", scenes=2)
    state = run_of_the_deployment(str(root / "set" / "scenes"))
    assert state.is_completed() and len(catalogued(flow_settings)) == 2


def test_a_direct_call_as_cropai_ingest_makes_reads_a_folder_outside_the_roots(
    flow_settings: Settings, root: Path, tmp_path: Path
) -> None:
    small_scene_set(tmp_path / "elsewhere", scenes=1)
    summary = ingest(str(tmp_path / "elsewhere" / "scenes"))
    assert summary.ingested == 1


def test_a_run_never_follows_a_catalog_link_to_a_private_address(
    flow_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = {"rel": "item", "href": "http://10.0.0.1/S2_1.json", "type": "application/json"}
    with public_hosts(monkeypatch, {f"{PUBLIC}/catalog.json": catalog_answer(link)}) as proxy:
        state = ingest_scenes(f"{PUBLIC}/catalog.json", return_state=True)
    assert "10.0.0.1, a private address" in failure(state)
    assert proxy.asked == [f"{PUBLIC}/catalog.json"]


def test_a_deployment_run_never_reads_a_catalog_link_out_of_its_root(
    flow_settings: Settings, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "S2_1.json"
    outside.write_text(json.dumps(item_document("S2_1", {"blue": str(tmp_path / "B02.tif")})))
    link = {"rel": "item", "href": str(outside), "type": "application/json"}
    (root / "catalog.json").write_bytes(catalog_answer(link).body)
    state = run_of_the_deployment(str(root / "catalog.json"))
    assert "outside the folders ingestion may read" in failure(state)
