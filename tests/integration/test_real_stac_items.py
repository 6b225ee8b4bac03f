"""Real STAC items from Earth Search and Planetary Computer, ingested with their own metadata:
per-band assets with uint8 SCL, the radiometry each provider declares, and their provenance.

The items are real (``../shared/realdata/stac``); only their band assets' hrefs are pointed at
small local files, written here with a known digital number, because the real COGs are not
on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from sqlalchemy import select

from cropai.db import Scene
from cropai.ingest import ingest_candidate
from cropai.raster import canonical_band
from cropai.services import Services
from cropai.sources import discover
from testkit.realdata import realdata

DN = 1234
SIZE_10M = 40  # px: 400 m at 10 m, 20 m bands at half that
TWENTY_METRE = {"B05", "B06", "B07", "B8A", "B11", "B12", "SCL"}


def localised(item: dict[str, Any], folder: Path) -> Path:
    """The real item with each band asset's href pointed at a local file holding ``DN``
    (SCL: uint8 class 4), on the item's own CRS and tile origin; written as ``item.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    crs = f"EPSG:{item['properties'].get('proj:epsg') or 32631}"
    for key, asset in item["assets"].items():
        band = _band_of(key, asset)
        if band is None or "jp2" in (asset.get("type") or ""):
            continue
        asset["href"] = str(_write_band(folder / f"{key}.tif", band, crs, asset.get("proj:transform")))
    item["links"] = []
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    return path


def _band_of(key: str, asset: dict[str, Any]) -> str | None:
    named = asset.get("eo:bands") or [{}]
    band = canonical_band(named[0].get("name")) or canonical_band(key)
    return (
        band
        if band in (*(f"B{n}" for n in ("02", "03", "04", "05", "06", "07", "08", "8A", "11", "12")), "SCL")
        else None
    )


def _write_band(path: Path, band: str, crs: str, transform: list[float] | None) -> Path:
    factor = 2 if band in TWENTY_METRE else 1
    x0, y0 = (transform[2], transform[5]) if transform else (399_960.0, 5_000_040.0)
    size = SIZE_10M // factor
    dtype = "uint8" if band == "SCL" else "uint16"
    value = 4 if band == "SCL" else DN
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype=dtype,
        crs=crs,
        transform=Affine(10.0 * factor, 0, x0, 0, -10.0 * factor, y0),
        nodata=0,
    ) as dst:
        dst.write(np.full((1, size, size), value, dtype=dtype))
    return path


def ingest_item(item: dict[str, Any], folder: Path, svc: Services) -> Scene:
    [candidate] = discover(str(localised(item, folder)), svc.store)
    outcome = ingest_candidate(candidate, svc.store, svc.sessions)
    assert outcome.status == "ingested", outcome.reason
    with svc.sessions() as session:
        return session.scalars(select(Scene).where(Scene.scene_id == outcome.scene_id)).one()


def stored_pixels(svc: Services, scene: Scene) -> np.ndarray:
    with rasterio.open(svc.store.gdal_path(scene.object_key)) as cog:
        assert cog.descriptions[-1] == "SCL" and cog.tags()["BOA_ADD_OFFSET"] == "0"
        return cog.read()


def test_a_planetary_computer_item_after_2022_loses_its_offset(postgres_catalogue: Services, tmp_path: Path) -> None:
    """PC says the offset only through s2:processing_baseline (05.10): DN 1234 is stored as 234."""
    item = json.loads(realdata("stac", "planetary-computer", "sentinel-2-l2a-pc.json").read_text())[0]
    scene = ingest_item(item, tmp_path / "pc", postgres_catalogue)
    pixels = stored_pixels(postgres_catalogue, scene)
    assert set(np.unique(pixels[:10])) == {234} and set(np.unique(pixels[10])) == {4}
    assert (scene.mgrs_tile, scene.processing_baseline, scene.radiometric_offset) == ("47XML", "05.10", -1000)
    assert scene.platform == "sentinel-2b" and scene.relative_orbit == 122
    assert scene.product_id == "S2B_MSIL2A_20240419T095549_N0510_R122_T47XML_20240419T123458"


def test_a_planetary_computer_item_before_2022_is_stored_as_it_is(postgres_catalogue: Services, tmp_path: Path) -> None:
    path = realdata("stac", "planetary-computer", "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json")
    scene = ingest_item(json.loads(path.read_text()), tmp_path / "pc-2019", postgres_catalogue)
    assert set(np.unique(stored_pixels(postgres_catalogue, scene)[:10])) == {DN}
    assert (scene.mgrs_tile, scene.processing_baseline, scene.radiometric_offset) == ("06VVN", "02.12", 0)


# pystac, migrating the c1 item's storage extension on read, warns that its s3 hrefs name no bucket.
@pytest.mark.filterwarnings("ignore:Could not parse bucket/account from href:UserWarning")
@pytest.mark.parametrize(
    ("item_path", "stored", "tile"),
    [
        # flag true beside raster:bands offset -0.1: Earth Search took the offset off already
        (("earth-search-v1", "sentinel-2-l2a", "S2A_13TDE_20231008_0_L2A.json"), DN, "13TDE"),
        # collection 1: the offset is declared in raster:bands and the pixels still carry it
        (("earth-search-v1", "sentinel-2-c1-l2a", "S2B_T20EPT_20250731T131905_L2A.json"), DN - 1000, "20EPT"),
        # before 2022: no offset anywhere
        (("earth-search-v1", "sentinel-2-l2a", "S2A_28QCH_20200714_0_L2A.json"), DN, "28QCH"),
    ],
    ids=["es-v1-l2a-flagged", "es-v1-c1-l2a", "es-v1-l2a-2020"],
)
def test_earth_search_items_follow_the_rule_pinned_for_them(
    postgres_catalogue: Services, tmp_path: Path, item_path: tuple[str, ...], stored: int, tile: str
) -> None:
    item = json.loads(realdata("stac", *item_path).read_text())
    scene = ingest_item(item, tmp_path / "es", postgres_catalogue)
    pixels = stored_pixels(postgres_catalogue, scene)
    assert set(np.unique(pixels[:10])) == {stored}, "reflectance bands"
    assert pixels.shape == (11, SIZE_10M, SIZE_10M) and set(np.unique(pixels[10])) == {4}, "uint8 SCL at 20 m"
    assert scene.mgrs_tile == tile and scene.radiometric_offset == stored - DN


def test_an_l1c_item_is_quarantined_saying_l2a_is_needed(postgres_catalogue: Services, tmp_path: Path) -> None:
    item = json.loads(
        realdata("stac", "earth-search-v1", "sentinel-2-l1c", "S2B_20EPT_20250731_0_L1C.json").read_text()
    )
    [candidate] = discover(str(localised(item, tmp_path / "l1c")), postgres_catalogue.store)
    outcome = ingest_candidate(candidate, postgres_catalogue.store, postgres_catalogue.sessions)
    assert (
        outcome.status == "rejected" and "Level-1C" in (outcome.reason or "") and "Level-2A" in (outcome.reason or "")
    )
    assert json.loads(postgres_catalogue.store.get(outcome.object_key or ""))["reason"] == outcome.reason
    assert postgres_catalogue.store.list("scenes/") == []
