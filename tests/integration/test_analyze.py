"""The analyze flow end to end on generated scenes: Prefect's harness, a real Dask
LocalCluster, PostgreSQL and SQLite, the S3 server and the folder store."""

import uuid
from pathlib import Path

import numpy as np
import pytest
import rasterio
from prefect.client.schemas.objects import State
from rio_cogeo.cogeo import cog_validate
from sqlalchemy import select, update

from cropai.analysis_records import create_analysis
from cropai.analysis_runs import reopen
from cropai.config import Settings
from cropai.cropmap import AnalysisSummary
from cropai.db import Analysis, AnalysisClassStat, AnalysisStatus, FieldPrediction, Scene
from cropai.services import Services, services
from cropai.webtiles import TileId, tile_key
from flows.analyze import analyze, summary_markdown
from tests.analysis_fixtures import AOI, END, START, Season, ingested_season
from tests.conftest import export_settings, s3_settings


@pytest.fixture
def season(flow_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Services, Season]:
    monkeypatch.setenv("CROPAI_DASK_WORKERS", "2")
    svc = services(flow_settings)
    return svc, ingested_season(svc, tmp_path / "season")


def row(svc: Services, analysis_id: uuid.UUID) -> Analysis:
    with svc.sessions() as session:
        return session.get_one(Analysis, analysis_id)


def reason(svc: Services, analysis_id: uuid.UUID) -> str:
    return row(svc, analysis_id).status_reason or ""


def summary_of(outcome: AnalysisSummary | State) -> AnalysisSummary:
    assert isinstance(outcome, AnalysisSummary), outcome
    return outcome


def crop_map(svc: Services, analysis: Analysis) -> np.ndarray:
    assert analysis.map_key is not None
    with svc.store.gdal_env(), rasterio.open(svc.store.gdal_path(analysis.map_key)) as src:
        return src.read()


def test_analysis_maps_the_aoi_and_predicts_most_fields_right(season: tuple[Services, Season]) -> None:
    svc, data = season
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@latest")
    state = analyze(str(analysis_id), return_state=True)
    assert state.is_completed(), state.message
    analysis = row(svc, analysis_id)
    assert analysis.status == AnalysisStatus.completed and analysis.flow_run_id == state.state_details.flow_run_id
    assert analysis.batches_done == analysis.batches_total >= 1
    assert analysis.map_key is not None and analysis.quicklook_key is not None

    path = svc.store.gdal_path(analysis.map_key)
    with svc.store.gdal_env():
        assert cog_validate(path, quiet=True)[0]
    labels = crop_map(svc, analysis)[0]
    with svc.sessions() as session:
        stats = session.scalars(select(AnalysisClassStat).where(AnalysisClassStat.analysis_id == analysis_id)).all()
        predictions = session.scalars(select(FieldPrediction).where(FieldPrediction.analysis_id == analysis_id)).all()
    mapped = int((labels > 0).sum())
    assert sum(s.pixel_count for s in stats) == mapped
    assert sum(s.area_ha for s in stats) == pytest.approx(mapped * 0.01)
    assert mapped == pytest.approx(analysis.aoi_area_ha / 0.01, rel=0.03)  # the AOI's whole area is mapped
    assert svc.store.get(analysis.quicklook_key)[:8] == b"\x89PNG\r\n\x1a\n"

    # The analysis records the exact scene versions it read, in time order.
    with svc.sessions() as session:
        catalogued = {s.object_key: s for s in session.scalars(select(Scene))}
    inputs = analysis.input_scenes or []
    assert len(inputs) >= 6 and [i["acquired_at"] for i in inputs] == sorted(i["acquired_at"] for i in inputs)
    for used in inputs:
        scene = catalogued[used["object_key"]]
        assert (used["scene_id"], used["version"], used["content_hash"]) == (
            scene.scene_id,
            scene.version,
            scene.content_hash,
        )
    assert summary_markdown(summary_of(state.result())).count("| `") >= len(inputs)

    right = sum(p.class_id == data.field_classes[p.field_id] for p in predictions)
    assert len(predictions) == len(data.field_classes) >= 10
    assert right / len(predictions) >= 0.8
    assert all(0 < p.share <= 1 and 0 < p.mean_confidence <= 1 for p in predictions)


def test_rerun_reuses_batches_and_gives_the_same_map(season: tuple[Services, Season]) -> None:
    svc, _ = season
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@1.0.0", options={"batch_pixels": 100_000})
    first = summary_of(analyze(str(analysis_id)))
    before = crop_map(svc, row(svc, analysis_id))
    # A rerun after a kill: one batch lost its marker (never finished), the others are reused.
    markers = svc.store.list(f"analyses/{analysis_id}/batches/")
    assert len(markers) == first.batches >= 2
    svc.store.delete(markers[0].key)
    cached_tile = tile_key(str(analysis_id), TileId(14, 8265, 5681))
    svc.store.put(cached_tile, b"a web tile of the first map")
    with svc.sessions.begin() as session:  # its runner was killed after the map was written
        session.execute(update(Analysis).where(Analysis.id == analysis_id).values(status=AnalysisStatus.failed))
    second = summary_of(analyze(str(analysis_id), reopen(svc.sessions, analysis_id)))
    assert not svc.store.exists(cached_tile)  # the viewer renders the new map's tiles afresh
    assert second.batches_reused == first.batches - 1
    assert np.array_equal(crop_map(svc, row(svc, analysis_id)), before)
    with svc.sessions() as session:
        stats = session.scalars(select(AnalysisClassStat).where(AnalysisClassStat.analysis_id == analysis_id)).all()
    assert sum(s.pixel_count for s in stats) == int((before[0] > 0).sum())  # replaced, not doubled


# Database-agnostic behaviour: SQLite is enough (the end-to-end tests above run on both).
@pytest.mark.parametrize("database_settings", ["sqlite"], indirect=True)
def test_no_scenes_in_the_window_fails_with_a_reason(season: tuple[Services, Season]) -> None:
    svc, _ = season
    elsewhere = {"type": "Polygon", "coordinates": [[[10.0, 50.0], [10.02, 50.0], [10.02, 50.02], [10.0, 50.0]]]}
    analysis_id = create_analysis(svc.sessions, elsewhere, START, END, "cropnet@latest")
    assert analyze(str(analysis_id), return_state=True).is_failed()
    assert row(svc, analysis_id).status == AnalysisStatus.failed
    why = reason(svc, analysis_id)
    assert "no usable scenes" in why and "2025-04-01" in why
    assert "10.0" in why  # the AOI is named


# Database-agnostic behaviour: SQLite is enough (the end-to-end tests above run on both).
@pytest.mark.parametrize("database_settings", ["sqlite"], indirect=True)
def test_unknown_model_version_fails_with_the_known_ones(season: tuple[Services, Season]) -> None:
    svc, _ = season
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@7.0.0")
    state = analyze(str(analysis_id), return_state=True)
    assert state.is_failed()
    assert "no model version cropnet@7.0.0; known versions: cropnet@1.0.0" in reason(svc, analysis_id)


# Database-agnostic behaviour: SQLite is enough (the end-to-end tests above run on both).
@pytest.mark.parametrize("database_settings", ["sqlite"], indirect=True)
def test_a_batch_that_keeps_failing_fails_the_run_naming_it(season: tuple[Services, Season]) -> None:
    svc, _data = season
    for info in svc.store.list("scenes/"):  # the scenes vanish from the store after cataloguing
        svc.store.delete(info.key)
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@latest")
    assert analyze(str(analysis_id), return_state=True).is_failed()
    assert reason(svc, analysis_id).startswith("1 of 1 batches failed after retries: batch 0:")


def test_analysis_on_postgresql_and_the_s3_server(
    postgres_url: str,
    s3_endpoint: str,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_api: str,
) -> None:
    from cropai.db import upgrade_database
    from cropai.storage import S3Store

    configured = s3_settings(settings, s3_endpoint, f"test-{uuid.uuid4().hex[:8]}").model_copy(
        update={"database_url": postgres_url}
    )
    export_settings(monkeypatch, configured)
    monkeypatch.setenv("CROPAI_DASK_WORKERS", "2")
    svc = services(configured)
    assert isinstance(svc.store, S3Store)
    svc.store.ensure_bucket()
    upgrade_database(svc.engine)
    data = ingested_season(svc, tmp_path / "season")
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@latest")
    summary = summary_of(analyze(str(analysis_id)))
    assert summary.map.startswith("/vsis3/") and summary.analysis_id == analysis_id
    with svc.sessions() as session:
        predictions = session.scalars(select(FieldPrediction).where(FieldPrediction.analysis_id == analysis_id)).all()
    assert len(predictions) == len(data.field_classes)  # written with COPY
    assert row(svc, analysis_id).status == AnalysisStatus.completed
