"""Ingestion of single scenes against the real catalogue databases and stores."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box, shape
from sqlalchemy import select

from cropai.config import Settings
from cropai.db import IngestRun, Scene, make_engine, upgrade_database
from cropai.ingest import finish_run, ingest_candidate, start_run
from cropai.services import Services, services
from cropai.sources import discover
from cropai.storage import S3Store
from cropai.synth import FileFormat
from tests.scene_files import BBOX, corrupt_file, crs_less_copy, small_scene_set, truncated_copy


@pytest.fixture
def catalogue(database_settings: Settings) -> Services:
    svc = services(database_settings)
    upgrade_database(svc.engine)
    return svc


def ingest_folder(folder: Path, svc: Services, run_id: int | None = None, **kwargs):
    return [ingest_candidate(c, svc.store, svc.sessions, run_id, **kwargs) for c in discover(str(folder), svc.store)]


def scenes(svc: Services) -> list[Scene]:
    with svc.sessions() as session:
        return list(session.scalars(select(Scene).order_by(Scene.acquired_at)))


def test_a_folder_of_scenes_lands_as_cogs_with_their_metadata(catalogue: Services, tmp_path: Path) -> None:
    made = small_scene_set(tmp_path / "set", scenes=3, file_format="gtiff")
    outcomes = ingest_folder(tmp_path / "set" / "scenes", catalogue)
    assert [o.status for o in outcomes] == ["ingested"] * 3
    rows = scenes(catalogue)
    assert [r.scene_id for r in rows] == [s.scene_id for s in made.scenes]
    for row, synthetic in zip(rows, made.scenes, strict=True):
        path = catalogue.store.gdal_path(row.object_key)
        assert cog_validate(path, quiet=True)[0]
        with rasterio.open(path) as cog, rasterio.open(synthetic.path) as original:
            assert np.array_equal(cog.read(), original.read())
            assert cog.descriptions == original.descriptions
        assert row.cloud_fraction == pytest.approx(synthetic.cloud_fraction, abs=0.02)
        assert row.acquired_at.replace(tzinfo=None) == synthetic.acquired_at.replace(tzinfo=None)
        assert row.crs == "EPSG:32631" and row.resolution_m == 10 and row.version == 1
        footprint = shape(row.footprint_geojson)
        assert footprint.intersection(box(*BBOX)).area / box(*BBOX).area > 0.95
        assert (row.minx, row.miny, row.maxx, row.maxy) == pytest.approx(footprint.bounds)


def test_ingesting_the_same_scenes_again_adds_nothing(catalogue: Services, tmp_path: Path) -> None:
    small_scene_set(tmp_path / "set", scenes=2)
    ingest_folder(tmp_path / "set" / "scenes", catalogue)
    objects = catalogue.store.list("scenes/")
    again = ingest_folder(tmp_path / "set" / "scenes", catalogue)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert len(scenes(catalogue)) == 2
    assert catalogue.store.list("scenes/") == objects


def test_the_same_file_from_another_source_is_a_duplicate(catalogue: Services, tmp_path: Path) -> None:
    made = small_scene_set(tmp_path / "set", scenes=1)
    ingest_folder(tmp_path / "set" / "scenes", catalogue)
    catalogue.store.put(f"inbox/{made.scenes[0].path.name}", made.scenes[0].path)
    [outcome] = [
        ingest_candidate(c, catalogue.store, catalogue.sessions) for c in discover("store:inbox/", catalogue.store)
    ]
    assert outcome.status == "skipped"
    assert len(scenes(catalogue)) == 1
    assert catalogue.store.list("inbox/") == []  # handled inbox files leave the inbox


def test_a_changed_file_with_the_same_id_becomes_version_2(catalogue: Services, tmp_path: Path) -> None:
    first = small_scene_set(tmp_path / "a", scenes=1, seed=5).scenes[0]
    ingest_folder(tmp_path / "a" / "scenes", catalogue)
    # Same scene id and acquisition time (same bbox), different pixels: reprocessed upstream.
    with rasterio.open(first.path) as src:
        profile, data, tags, names = src.profile, src.read(), src.tags(), src.descriptions
    changed = tmp_path / "b" / first.path.name
    changed.parent.mkdir()
    with rasterio.open(changed, "w", **profile) as dst:
        dst.write(np.where(data > 0, data + 1, 0).astype("uint16"))
        dst.descriptions = names
        dst.update_tags(**tags)
    [outcome] = ingest_folder(changed.parent, catalogue)
    assert (outcome.status, outcome.version) == ("ingested", 2)
    rows = scenes(catalogue)
    assert [r.version for r in rows] == [1, 2]
    assert rows[0].object_key != rows[1].object_key
    assert all(catalogue.store.exists(r.object_key) for r in rows)


@pytest.mark.parametrize(
    ("file_format", "make_bad", "reason"),
    [
        ("gtiff", lambda src, out: corrupt_file(out / "corrupt.tif"), "not a readable raster"),
        # A GeoTIFF keeps its directory at the end, a COG at the start: both halves must be caught.
        ("gtiff", lambda src, out: truncated_copy(src, out / "truncated.tif"), "not a readable raster"),
        ("cog", lambda src, out: truncated_copy(src, out / "truncated.tif"), "truncated or corrupt"),
        (
            "gtiff",
            lambda src, out: (out / "notes.txt").write_text("field notes") and out / "notes.txt",
            "not a readable raster",
        ),
        ("gtiff", lambda src, out: crs_less_copy(src, out / "nocrs.tif"), "has no CRS"),
    ],
    ids=["corrupt", "truncated-geotiff", "truncated-cog", "non-raster", "crs-less"],
)
def test_bad_files_are_quarantined_with_the_reason(
    catalogue: Services, tmp_path: Path, file_format: FileFormat, make_bad, reason: str
) -> None:
    good = small_scene_set(tmp_path / "set", scenes=1, file_format=file_format).scenes[0]
    drop = tmp_path / "drop"
    drop.mkdir()
    bad = make_bad(good.path, drop)
    run_id = start_run(catalogue.sessions, str(drop))
    [outcome] = ingest_folder(drop, catalogue, run_id)
    assert outcome.status == "rejected" and reason in outcome.reason
    note = json.loads(catalogue.store.get(outcome.object_key))
    assert note["reason"] == outcome.reason and note["source"] == str(bad)
    assert catalogue.store.get(note["kept"][0]) == bad.read_bytes()
    assert scenes(catalogue) == [] and catalogue.store.list("scenes/") == []
    run = finish_run(catalogue.sessions, run_id, [outcome])
    assert run.rejected == 1 and run.rejections[0]["reason"] == outcome.reason


def test_a_file_without_band_names_needs_a_band_mapping(catalogue: Services, tmp_path: Path) -> None:
    scene = small_scene_set(tmp_path / "set", scenes=1).scenes[0]
    with rasterio.open(scene.path) as src:
        profile, data = src.profile, src.read()
    reordered = tmp_path / "drop" / "S2_unnamed_20250501T103000.tif"
    reordered.parent.mkdir()
    with rasterio.open(reordered, "w", **{**profile, "driver": "GTiff"}) as dst:
        dst.write(data[::-1])  # SCL first, then B12 ... B02, no descriptions
    [refused] = ingest_folder(reordered.parent, catalogue)
    assert refused.status == "rejected" and "missing bands" in refused.reason

    mapping = ["SCL", "B12", "B11", "B8A", "B08", "B07", "B06", "B05", "B04", "B03", "B02"]
    reordered = reordered.rename(reordered.with_name("S2_named_20250501T103000.tif"))
    [landed] = ingest_folder(reordered.parent, catalogue, band_mapping=mapping)
    assert landed.status == "ingested"
    with rasterio.open(catalogue.store.gdal_path(landed.object_key)) as cog:
        assert np.array_equal(cog.read(), data)
    assert str(scenes(catalogue)[0].acquired_at).startswith("2025-05-01 10:30:00")


def test_inbox_on_s3_lands_in_s3_and_empties_the_inbox(
    database_settings: Settings, s3_store: S3Store, tmp_path: Path
) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    svc = Services(engine, services(database_settings).sessions, s3_store)
    made = small_scene_set(tmp_path / "set", scenes=2, file_format="gtiff")
    for scene in made.scenes:
        s3_store.put(f"inbox/2025/{scene.path.name}", scene.path)
    outcomes = [ingest_candidate(c, s3_store, svc.sessions) for c in discover("store:inbox/", s3_store)]
    assert [o.status for o in outcomes] == ["ingested", "ingested"]
    assert s3_store.list("inbox/") == []
    for outcome in outcomes:
        assert outcome.object_key is not None
        with s3_store.gdal_env(), rasterio.open(s3_store.gdal_path(outcome.object_key)) as cog:
            assert cog.count == 11


def test_run_counts_are_live_and_final(catalogue: Services, tmp_path: Path) -> None:
    small_scene_set(tmp_path / "set", scenes=2)
    corrupt_file(tmp_path / "set" / "scenes" / "broken.tif")
    run_id = start_run(catalogue.sessions, "folder")
    outcomes = ingest_folder(tmp_path / "set" / "scenes", catalogue, run_id)
    with catalogue.sessions() as session:
        live = session.get_one(IngestRun, run_id)
        assert (live.ingested, live.rejected) == (2, 1)
    run = finish_run(catalogue.sessions, run_id, outcomes)
    assert (run.ingested, run.skipped, run.rejected, run.status.value) == (2, 0, 1, "completed")
