"""GeoTIFF sources with real pixels: a real labelled season ingests whole and unchanged, the
real crop of a baseline 04.00 product says its offset in its tags, and stacks that say
nothing take the user's ``--radiometric-offset``; a stored COG read again is never shifted twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sqlalchemy import select

from cropai.db import Scene
from cropai.errors import InvalidScene
from cropai.ingest import ingest_candidate
from cropai.raster import plan_layout
from cropai.services import Services
from cropai.sources import discover
from testkit.realdata import realdata

SEASON = "worldcereal-flanders-2019"
CROP = ("imagery", "T29UNU_20221005_N0400_L2A_crop")


def ingest_folder(folder: Path, svc: Services, **hints):
    return [ingest_candidate(c, svc.store, svc.sessions, **hints) for c in discover(str(folder), svc.store)]


def rows(svc: Services) -> list[Scene]:
    with svc.sessions() as session:
        return list(session.scalars(select(Scene).order_by(Scene.acquired_at)))


def stored(svc: Services, scene: Scene) -> np.ndarray:
    with rasterio.open(svc.store.gdal_path(scene.object_key)) as cog:
        return cog.read()


def test_a_real_season_ingests_with_no_rejection_and_unchanged_pixels(postgres_catalogue: Services) -> None:
    """35 real L2A acquisitions over Flanders (baselines before 04.00, no offset tags)."""
    folder = realdata(SEASON, "scenes")
    outcomes = ingest_folder(folder, postgres_catalogue)
    assert len(outcomes) == 35 and [o.reason for o in outcomes if o.status != "ingested"] == []
    scenes = rows(postgres_catalogue)
    assert all(s.radiometric_offset == 0 and s.cloud_fraction is not None for s in scenes)
    first = scenes[0]
    with rasterio.open(folder / f"{first.scene_id}.tif") as original:
        np.testing.assert_array_equal(stored(postgres_catalogue, first), original.read())


def test_the_real_04_crop_is_refused_for_its_missing_b08_but_its_uint8_scl_is_accepted() -> None:
    """Real per-band files of a 04.00 product: SCL is uint8 as ESA delivers it; L2A has no
    60 m B08, so the set is a real negative case."""
    folder = realdata(*CROP)
    files = [(str(path), None) for path in sorted(folder.glob("*_60m.tif"))] + [
        (str(folder / "T29UNU_20221005T115411_SCL_20m.tif"), None)
    ]
    with pytest.raises(InvalidScene, match="missing bands B08"):
        plan_layout(files)


def write_stack(path: Path, dn: int, tags: dict[str, str] | None = None) -> Path:
    """A ten-band stack plus SCL on 40 x 40 px, every reflectance DN = ``dn``, a nodata corner."""
    data = np.full((11, 40, 40), dn, dtype=np.uint16)
    data[10] = 4
    data[:, :5, :5] = 0
    names = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=11,
        dtype="uint16",
        crs="EPSG:32631",
        transform=rasterio.transform.from_origin(500_000, 5_600_000, 10, 10),
        nodata=0,
    ) as dst:
        dst.write(data)
        dst.descriptions = names
        dst.update_tags(ACQUISITION_DATETIME="2023-06-01T10:30:00Z", **(tags or {}))
    return path


def test_a_stack_without_tags_takes_the_users_offset(postgres_catalogue: Services, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_stack(tmp_path / "in" / "export_20230601.tif", 1234)
    [outcome] = ingest_folder(tmp_path / "in", postgres_catalogue, radiometric_offset=-1000)
    assert outcome.status == "ingested", outcome.reason
    [scene] = rows(postgres_catalogue)
    pixels = stored(postgres_catalogue, scene)
    assert set(np.unique(pixels[:10, 5:, 5:])) == {234} and set(np.unique(pixels[:, :5, :5])) == {0}
    assert scene.radiometric_offset == -1000


def test_tags_say_more_than_the_users_default(postgres_catalogue: Services, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_stack(tmp_path / "in" / "harmonised_20230601.tif", 1234, {"BOA_ADD_OFFSET": "0"})
    [outcome] = ingest_folder(tmp_path / "in", postgres_catalogue, radiometric_offset=-1000)
    assert outcome.status == "ingested", outcome.reason
    [scene] = rows(postgres_catalogue)
    assert set(np.unique(stored(postgres_catalogue, scene)[:10, 5:, 5:])) == {1234} and scene.radiometric_offset == 0


def test_a_stored_cog_ingested_again_is_never_shifted_twice(postgres_catalogue: Services, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_stack(tmp_path / "in" / "esa_export_20230601.tif", 1234, {"BOA_ADD_OFFSET": "-1000"})
    [first] = ingest_folder(tmp_path / "in", postgres_catalogue)
    (tmp_path / "again").mkdir()
    shutil.copy(postgres_catalogue.store.gdal_path(first.object_key or ""), tmp_path / "again" / "copy.tif")
    [again] = ingest_folder(tmp_path / "again", postgres_catalogue)
    assert (first.status, again.status, again.version) == ("ingested", "ingested", 2)
    first_row, again_row = rows(postgres_catalogue)
    assert set(np.unique(stored(postgres_catalogue, first_row)[:10, 5:, 5:])) == {234}
    np.testing.assert_array_equal(stored(postgres_catalogue, again_row), stored(postgres_catalogue, first_row))
    assert (first_row.radiometric_offset, again_row.radiometric_offset) == (-1000, 0)
