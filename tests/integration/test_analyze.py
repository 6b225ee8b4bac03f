"""The analyze flow end to end on generated scenes: Prefect's harness, a real Dask
LocalCluster, PostgreSQL and SQLite, the S3 server and the folder store."""

import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pystac
import pystac.validation
import pytest
import rasterio
import rioxarray  # noqa: F401  (.rio)
import zarr
from prefect.client.schemas.objects import State
from pystac.extensions.classification import ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from rasterio.warp import transform_geom
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box, mapping, shape
from sqlalchemy import select, update

import cropai
from cropai import stac_catalogue
from cropai.analysis_records import create_analysis, model_legend
from cropai.analysis_runs import reopen
from cropai.config import Settings
from cropai.cropmap import AnalysisSummary
from cropai.db import Analysis, AnalysisClassStat, AnalysisStatus, FieldPrediction, Scene
from cropai.fields import add_fields
from cropai.ingest import ingest_candidate
from cropai.legend import Legend
from cropai.sentinel2 import SCL
from cropai.services import Services, services
from cropai.sources import discover
from cropai.synth import SynthSpec, synthesize, write_scene
from cropai.webtiles import TileId, tile_key
from cropai.zarr_store import ObjectZarrStore
from flows.analyze import analyze, summary_markdown
from models.registry import ensure_default_model
from tests.analysis_fixtures import AOI, END, START, Season, ingested_season
from tests.conftest import export_settings, s3_settings
from tests.gdal_categories import class_band_categories


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


def test_analysis_maps_the_aoi_and_predicts_most_fields_right(
    season: tuple[Services, Season], flow_settings: Settings
) -> None:
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
    # Beside the map its QGIS style, with the name QGIS looks for: the class names of the map's ids.
    style = svc.store.get(analysis.map_key.replace("cropmap.tif", "cropmap.qml")).decode()
    assert all(f'value="{c}"' in style for c in {int(v) for v in np.unique(labels)} - {0})
    names, _ = class_band_categories(Path(path))  # GDAL's sidecar beside it names them too
    assert all(names[c] for c in {int(v) for v in np.unique(labels)} - {0})

    # For notebooks: the predictions as an xarray Dataset equal the COG pixel for pixel, on its grid.
    opened = cropai.open_analysis(analysis_id, flow_settings)
    with svc.store.gdal_env(), rasterio.open(path) as cog:
        assert np.array_equal(opened["class"].values, cog.read(1))
        assert np.array_equal(opened["confidence"].values, cog.read(2))
        assert opened.rio.crs == cog.crs and opened.rio.transform() == cog.transform
    assert json.loads(opened.attrs["classes"])[0]["name"] and opened.sizes["time"] == 6
    # ... and the season a model sees there: the same clear observations behind every bin.
    seen = cropai.open_season(AOI, START, END, settings=flow_settings)
    assert seen.rio.crs == opened.rio.crs and seen["reflectance"].shape[:2] == (6, 10)
    assert np.array_equal(seen["clear_count"].values, opened["evidence"].values)

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
    assert_stac_item_describes_the_map(svc, analysis)

    right = sum(p.class_id == data.field_classes[p.field_id] for p in predictions)
    assert len(predictions) == len(data.field_classes) >= 10
    assert right / len(predictions) >= 0.8
    assert all(0 < p.share <= 1 and 0 < p.mean_confidence <= 1 for p in predictions)


def assert_stac_item_describes_the_map(svc: Services, analysis: Analysis) -> None:
    """The analysis' STAC Item (core schema valid) has the COG's grid, the class ids the map
    holds among its classes, each stored asset's size, and a link to every scene it read."""
    item = stac_catalogue.analysis_item(
        analysis, model_legend_of(svc, analysis), stac_catalogue.Hrefs("http://cropai.test"), svc.store.size
    )
    as_served = item.to_dict(transform_hrefs=False)  # as the API serves it, without resolving links
    pystac.validation.validate_dict(as_served, pystac.STACObjectType.ITEM, extensions=[])
    assert analysis.map_key is not None
    projection = ProjectionExtension.ext(item)
    with svc.store.gdal_env(), rasterio.open(svc.store.gdal_path(analysis.map_key)) as cog:
        assert projection.code == cog.crs.to_string() and projection.shape == [cog.height, cog.width]
        assert projection.transform == list(cog.transform)[:6]
        on_map = {int(v) for v in np.unique(cog.read(1))}
    bands = RasterExtension.ext(item.assets["map"]).bands
    assert bands is not None
    classes = ClassificationExtension.ext(bands[0]).classes or []
    assert on_map <= {c.value for c in classes}
    assert FileExtension.ext(item.assets["evidence"]).size == svc.store.size(
        analysis.map_key.replace("cropmap", "evidence")
    )
    derived = [link["href"].rsplit("/", 1)[1] for link in as_served["links"] if link["rel"] == "derived_from"]
    assert derived == [f"{s['scene_id']}-v{s['version']}" for s in analysis.input_scenes or []]


def model_legend_of(svc: Services, analysis: Analysis) -> Legend:
    with svc.sessions() as session:
        return model_legend(session, analysis.model_version_id)


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
def test_workers_with_little_memory_get_smaller_batches_and_the_same_map(
    season: tuple[Services, Season], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, _ = season
    analysis_id = create_analysis(svc.sessions, AOI, START, END, "cropnet@1.0.0")
    first = summary_of(analyze(str(analysis_id)))
    before = crop_map(svc, row(svc, analysis_id))
    with svc.sessions.begin() as session:
        session.execute(update(Analysis).where(Analysis.id == analysis_id).values(status=AnalysisStatus.failed))
    monkeypatch.setenv("CROPAI_WORKER_MEMORY", "700MB")  # the local workers' limit, and what batches are sized to
    second = summary_of(analyze(str(analysis_id), reopen(svc.sessions, analysis_id)))
    assert second.batches > first.batches
    assert second.batches_reused == 0  # the first run's batches were other windows: none is taken for these
    assert np.array_equal(crop_map(svc, row(svc, analysis_id)), before)


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


# A small clear season whose west half lies under cloud after April: seen clear in 1 of the 6 bins.
CLOUDED_AREA = (1.600, 48.200, 1.616, 48.211)
CLOUDED_AOI = mapping(box(1.601, 48.201, 1.615, 48.210))


@dataclass(frozen=True)
class CloudedWest:
    boundary_x: float  # grid CRS metres: west of it, only April's scenes see the ground
    fields: dict[int, str]  # field id -> "west" or "east" (fields across the boundary left out)


@pytest.fixture
def clouded_west(
    flow_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Services, CloudedWest]:
    """The clouded season ingested, the model registered, its crop parcels inside the AOI uploaded."""
    monkeypatch.setenv("CROPAI_DASK_WORKERS", "2")
    svc = services(flow_settings)
    spec = SynthSpec(
        CLOUDED_AREA,
        date(2025, 3, 25),
        date(2025, 10, 5),
        seed=5,
        mean_cloud_cover=0.0,
        partial_swath_probability=0.0,
        parcel_size_m=200,
    )
    made = synthesize(spec, tmp_path / "season")
    west = made.grid.width // 2
    for scene in made.scenes:
        if scene.acquired_at.month != 4:
            with rasterio.open(scene.path) as src:
                stack = src.read()
            stack[-1, :, :west] = SCL.CLOUD_HIGH_PROBABILITY
            write_scene(stack, made.grid, scene, scene.path, "cog")
    for candidate in discover(str(made.root / "scenes"), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)
    ensure_default_model(svc.store, svc.sessions)
    boundary_x = (made.grid.transform * (west, 0))[0]
    aoi = shape(CLOUDED_AOI)
    features = [
        f
        for f in json.loads(made.parcels_path.read_text())["features"]
        if f["properties"]["is_crop"] and aoi.contains(shape(f["geometry"]))
    ]
    sides = {}
    for field_id, feature in zip(
        add_fields(svc.sessions, {"type": "FeatureCollection", "features": features}), features, strict=True
    ):
        minx, _, maxx, _ = shape(transform_geom("EPSG:4326", made.grid.crs, feature["geometry"])).bounds
        if maxx <= boundary_x or minx >= boundary_x:
            sides[field_id] = "west" if maxx <= boundary_x else "east"
    return svc, CloudedWest(boundary_x, sides)


@pytest.mark.parametrize("database_settings", ["postgresql"], indirect=True)  # field rows go in with COPY
def test_fields_seen_clear_in_too_few_bins_are_marked_insufficient_evidence(
    clouded_west: tuple[Services, CloudedWest],
) -> None:
    svc, season = clouded_west
    analysis_id = create_analysis(svc.sessions, CLOUDED_AOI, START, END, "cropnet@latest")
    summary = summary_of(analyze(str(analysis_id)))
    with svc.sessions() as session:
        predictions = {
            p.field_id: p
            for p in session.scalars(select(FieldPrediction).where(FieldPrediction.analysis_id == analysis_id))
        }
    west = [predictions[i] for i, side in season.fields.items() if side == "west"]
    east = [predictions[i] for i, side in season.fields.items() if side == "east"]
    assert west and east
    assert all(p.insufficient_evidence and p.gap_filled_share == pytest.approx(5 / 6, abs=1e-4) for p in west)
    assert not any(p.insufficient_evidence or p.gap_filled_share for p in east)
    assert summary.insufficient_fields == sum(p.insufficient_evidence for p in predictions.values()) >= len(west)
    assert "insufficient evidence" in summary_markdown(summary)


# Database-agnostic behaviour: SQLite is enough.
@pytest.mark.parametrize("database_settings", ["sqlite"], indirect=True)
def test_the_map_and_its_batches_keep_how_often_each_pixel_was_seen_clear(
    clouded_west: tuple[Services, CloudedWest],
) -> None:
    svc, season = clouded_west
    analysis_id = create_analysis(svc.sessions, CLOUDED_AOI, START, END, "cropnet@latest")
    analyze(str(analysis_id))
    labels = crop_map(svc, row(svc, analysis_id))[0]
    with svc.store.gdal_env(), rasterio.open(svc.store.gdal_path(f"analyses/{analysis_id}/evidence.tif")) as src:
        clear_bins = src.read(1)
        assert src.descriptions == ("clear_bins",) and src.tags()["EVIDENCE_BINS"] == "6"
        assert cog_validate(src.name, quiet=True)[0]
        centres_x = np.array([(src.transform * (col + 0.5, 0))[0] for col in range(src.width)])
    mapped = labels > 0
    in_west = np.broadcast_to(centres_x < season.boundary_x, labels.shape)
    assert set(np.unique(clear_bins[mapped & in_west])) == {1}  # April only
    assert set(np.unique(clear_bins[mapped & ~in_west])) == {6}
    assert not clear_bins[~mapped].any()

    # Class areas count the pixels seen clear in 1 bin of 6 apart (above the default 0.5 gap-filled).
    with svc.sessions() as session:
        stats = session.scalars(select(AnalysisClassStat).where(AnalysisClassStat.analysis_id == analysis_id)).all()
    assert stats and all(s.low_evidence_pixels == int((mapped & in_west & (labels == s.class_id)).sum()) for s in stats)

    # Each batch measured the clear composite values it read: as many per bin as the evidence says.
    evidence = np.asarray(
        zarr.open_array(ObjectZarrStore(svc.store, f"analyses/{analysis_id}/pred.zarr"), path="evidence", mode="r")[:]
    )
    markers = [json.loads(svc.store.get(m.key)) for m in svc.store.list(f"analyses/{analysis_id}/batches/")]
    counts = np.sum([m["input_moments"]["count"] for m in markers], axis=0)
    seen = (evidence > 0).sum(axis=(1, 2))  # per bin: pixels of the cores with a clear value
    assert counts.tolist() == [[float(n)] * counts.shape[1] for n in seen]


# A small clear season, ingested as generated or with every reflectance band scaled by 1.3:
# the radiometric fault of a product read with the wrong scale.
SHIFT_AREA = (1.650, 48.200, 1.664, 48.210)
SHIFT_AOI = mapping(box(1.651, 48.201, 1.663, 48.209))


def _ingest_season(svc: Services, folder: Path, gain: float) -> None:
    made = synthesize(
        SynthSpec(SHIFT_AREA, date(2025, 3, 25), date(2025, 10, 5), seed=6, partial_swath_probability=0.0), folder
    )
    if gain != 1.0:
        for scene in made.scenes:
            with rasterio.open(scene.path) as src:
                stack = src.read()
            stack[:-1] = np.clip(np.rint(stack[:-1] * gain), 0, np.iinfo(np.uint16).max).astype(np.uint16)
            write_scene(stack, made.grid, scene, scene.path, "cog")
    for candidate in discover(str(made.root / "scenes"), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)
    ensure_default_model(svc.store, svc.sessions)


@pytest.mark.parametrize("database_settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize("gain", [1.0, 1.3])
def test_scenes_unlike_the_training_inputs_put_a_warning_on_the_result_naming_bands_and_bins(
    flow_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gain: float
) -> None:
    monkeypatch.setenv("CROPAI_DASK_WORKERS", "2")
    svc = services(flow_settings)
    _ingest_season(svc, tmp_path / "season", gain)
    analysis_id = create_analysis(svc.sessions, SHIFT_AOI, START, END, "cropnet@latest")
    summary = summary_of(analyze(str(analysis_id)))
    analysis = row(svc, analysis_id)
    check, warnings = analysis.input_check, analysis.warnings or []
    assert check is not None and check["compared"] > 0
    shifted = [w for w in warnings if w.startswith("inputs differ from the model's training data")]
    if gain == 1.0:
        assert not check["flagged"] and check["score"] < check["threshold"] and not shifted
    else:
        assert check["flagged"] and check["worst"]
        worst = check["worst"][0]
        assert shifted == [w for w in summary.warnings if w.startswith("inputs differ")]
        assert f"{worst['band']} in {worst['bin']}" in shifted[0]
        assert worst["bin"].startswith("2025-")  # named by the analysis' own bins
    assert any("synthetic" in w for w in warnings)  # the shipped model says so on any scenes
