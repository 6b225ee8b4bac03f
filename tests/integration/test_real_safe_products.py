"""Sentinel-2 SAFE products in: folders and zips built from real ESA metadata (baselines 02.14,
04.00 and 05.09) with JPEG 2000 bands written by GDAL, ingested through the ingest flow and
the inbox into PostgreSQL and the S3 server, and every bad product quarantined with its reason
while the run completes. Real metadata comes from ``../shared/realdata`` (skipped without it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sqlalchemy import select

from cropai.config import Settings
from cropai.db import IngestRun, Scene, upgrade_database
from cropai.ingest import IngestSummary, ingest_candidate
from cropai.services import Services, services
from cropai.sources import discover
from cropai.storage import ObjectStore, S3Store
from flows.ingest import ingest_scenes
from testkit.realdata import SAFE_0214, SAFE_0400, SAFE_0509, SAFE_L1C
from testkit.safe_products import write_escaping_zip, write_safe, write_truncated_zip, write_zip
from tests.conftest import export_settings

PRODUCT_0400 = "S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454"
SIZE = 60  # px at 10 m


@pytest.fixture
def flow_catalogue(
    postgres_catalogue: Services, postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> Services:
    """The catalogue's settings exported as a flow run reads them, under Prefect's test harness."""
    export_settings(monkeypatch, postgres_settings)
    return postgres_catalogue


def scene_rows(svc: Services) -> list[Scene]:
    with svc.sessions() as session:
        return list(session.scalars(select(Scene).order_by(Scene.acquired_at)))


def stored(store: ObjectStore, scene: Scene) -> tuple[np.ndarray, dict[str, str], tuple[str, ...]]:
    with rasterio.open(store.gdal_path(scene.object_key)) as cog:
        return cog.read(), cog.tags(), cog.descriptions


def ingest_path(path: Path, svc: Services):
    return [ingest_candidate(c, svc.store, svc.sessions) for c in discover(str(path), svc.store)]


def test_a_baseline_04_safe_folder_stores_reflectance_without_the_offset(
    postgres_catalogue: Services, tmp_path: Path
) -> None:
    """A 04.00 DN of 1234 stores 234, SCL (uint8 at 20 m) keeps its classes on the 10 m grid,
    and the catalogue knows the product, spacecraft, tile, orbit, baseline and offset."""
    scl = np.full((SIZE // 2, SIZE // 2), 4, dtype=np.uint8)
    scl[:5] = 9  # a strip of high-probability cloud
    safe = write_safe(tmp_path / "in", SAFE_0400, SIZE, bands={"SCL": scl})
    [outcome] = ingest_path(safe, postgres_catalogue)
    assert outcome.status == "ingested", outcome.reason
    [scene] = scene_rows(postgres_catalogue)
    pixels, tags, names = stored(postgres_catalogue.store, scene)
    assert names[:3] == ("B02", "B03", "B04") and names[-1] == "SCL" and pixels.shape == (11, SIZE, SIZE)
    assert set(np.unique(pixels[:10])) == {234}
    assert set(np.unique(pixels[10][:10])) == {9} and set(np.unique(pixels[10][10:])) == {4}
    assert scene.scene_id == scene.product_id == PRODUCT_0400
    assert (scene.platform, scene.mgrs_tile, scene.relative_orbit) == ("sentinel-2a", "29UNU", 23)
    assert (scene.processing_baseline, scene.radiometric_offset) == ("04.00", -1000)
    assert scene.acquired_at.astimezone(UTC) == datetime(2022, 10, 5, 11, 54, 11, 24000, tzinfo=UTC)
    assert scene.crs == "EPSG:32629" and scene.resolution_m == 10
    assert scene.cloud_fraction == pytest.approx(10 / SIZE, abs=0.02)
    # The file says its radiometry, so reading (or re-ingesting) it never applies the offset twice.
    assert tags["BOA_ADD_OFFSET"] == "0" and tags["SOURCE_BOA_ADD_OFFSET"] == "-1000"
    assert tags["PRODUCT_ID"] == PRODUCT_0400 and tags["MGRS_TILE"] == "29UNU"


def test_a_baseline_02_zip_is_stored_as_it_is_and_its_folder_is_a_duplicate(
    postgres_catalogue: Services, tmp_path: Path
) -> None:
    """Before 04.00 there is no offset: a DN of 1234 stores 1234. The same product as a folder
    and as a zip is one scene."""
    archive = write_safe(tmp_path / "zips", SAFE_0214, SIZE, zipped=True)
    folder = write_safe(tmp_path / "folders", SAFE_0214, SIZE)
    [first] = ingest_path(archive, postgres_catalogue)
    [second] = ingest_path(folder, postgres_catalogue)
    assert first.status == "ingested" and second.status == "skipped", (first.reason, second.reason)
    [scene] = scene_rows(postgres_catalogue)
    pixels, _, _ = stored(postgres_catalogue.store, scene)
    assert set(np.unique(pixels[:10])) == {1234}
    assert (scene.mgrs_tile, scene.processing_baseline, scene.radiometric_offset) == ("22HBD", "02.14", 0)
    assert scene.platform == "sentinel-2b" and scene.relative_orbit == 81


def test_a_folder_of_downloads_ingests_each_product_and_quarantines_each_bad_one(
    flow_catalogue: Services, tmp_path: Path
) -> None:
    """The ingest flow on a Copernicus download folder: two good products (a zip and a folder),
    and one of each bad input. Each bad one is rejected with a JSON note saying why, the zips
    are kept whole, and the run completes with the good ones stored."""
    drop = tmp_path / "downloads"
    write_safe(drop, SAFE_0509, SIZE, zipped=True)
    write_safe(drop, SAFE_0400, SIZE)
    bad = {
        "truncated zip": (write_truncated_zip(drop / "t", SAFE_0214, SIZE), "not a readable zip"),
        "non-SAFE zip": (write_zip(drop / "notes.zip", {"notes/readme.txt": b"field notes"}), "not a SAFE"),
        "missing band": (write_safe(drop / "m", SAFE_0214, SIZE, omit=["B08"], zipped=True), "lacks B08"),
        "missing SCL": (write_safe(drop / "s", SAFE_0214, SIZE, omit=["SCL"], zipped=True), "lacks SCL"),
        "undecodable JP2": (write_safe(drop / "u", SAFE_0214, SIZE, truncate=["B04"], zipped=True), "B04"),
        "metadata mismatch": (
            write_safe(drop / "w", SAFE_0214, SIZE, wrong_crs=["B11"], zipped=True),
            "metadata disagrees",
        ),
        "L1C": (write_safe(drop / "l", SAFE_L1C, SIZE), "Level-1C"),
        "path escape": (write_escaping_zip(drop / "escape.zip", SAFE_0214), "escapes"),
    }
    postgres_catalogue = flow_catalogue
    summary = ingest_scenes(str(drop))
    assert isinstance(summary, IngestSummary)
    assert (summary.found, summary.ingested, summary.rejected, summary.status) == (10, 2, 8, "completed")
    tiles = sorted(s.mgrs_tile or "" for s in scene_rows(postgres_catalogue))
    assert tiles == ["01KAB", "29UNU"]
    with postgres_catalogue.sessions() as session:
        run = session.get_one(IngestRun, summary.ingest_run_id)
        rejections = {r["file"]: r for r in run.rejections}
    for name, (path, words) in bad.items():
        rejection = rejections[str(path)]
        assert words in rejection["reason"], (name, rejection["reason"])
        note = json.loads(postgres_catalogue.store.get(rejection["note"]))
        assert note["reason"] == rejection["reason"] and note["source"] == str(path)
        if path.is_file():  # a zip is kept whole; a local folder is referenced where it is
            assert postgres_catalogue.store.get(note["kept"][0]) == path.read_bytes(), name
    assert not any("evil" in info.key for info in postgres_catalogue.store.list(""))


def test_the_inbox_on_s3_takes_safe_zips_and_uploaded_safe_folders(
    postgres_settings: Settings, s3_store: S3Store, tmp_path: Path
) -> None:
    """A zip and a SAFE folder uploaded object by object land in the S3 server and leave the
    inbox; a bad folder leaves it too, kept whole under quarantine/."""
    svc = services(postgres_settings)
    upgrade_database(svc.engine)
    archive = write_safe(tmp_path / "a", SAFE_0214, SIZE, zipped=True)
    s3_store.put(f"inbox/{archive.name}", archive)
    for safe in (
        write_safe(tmp_path / "b", SAFE_0400, SIZE),
        write_safe(tmp_path / "c", SAFE_0509, SIZE, omit=["B12"]),
    ):
        for path in sorted(p for p in safe.rglob("*") if p.is_file()):
            s3_store.put(f"inbox/uploads/{safe.name}/{path.relative_to(safe).as_posix()}", path)
    candidates = discover("store:inbox/", s3_store)
    assert len(candidates) == 3 and all(c.is_safe for c in candidates)
    outcomes = {c.name: ingest_candidate(c, s3_store, svc.sessions) for c in candidates}
    statuses = sorted(o.status for o in outcomes.values())
    assert statuses == ["ingested", "ingested", "rejected"]
    [rejected] = [o for o in outcomes.values() if o.status == "rejected"]
    assert "lacks B12" in (rejected.reason or "")
    note = json.loads(s3_store.get(rejected.object_key or ""))
    assert any(key.endswith("MTD_MSIL2A.xml") for key in note["kept"]) and len(note["kept"]) > 10
    assert s3_store.list("inbox/") == []
    with svc.sessions() as session:
        rows = list(session.scalars(select(Scene)))
    assert sorted(r.processing_baseline or "" for r in rows) == ["02.14", "04.00"]
    for row in rows:
        with s3_store.gdal_env(), rasterio.open(s3_store.gdal_path(row.object_key)) as cog:
            assert cog.count == 11 and set(np.unique(cog.read(1))) == {1234 if row.radiometric_offset == 0 else 234}
