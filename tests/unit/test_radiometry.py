"""The one radiometry of stored scenes: offsets by processing baseline, the conversion of
digital numbers (dark pixels stay pixels, nodata stays nodata) and what product names and
GeoTIFF tags say, checked on real ESA material where it is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cropai.provenance import SceneProvenance, mgrs_tile, platform_name
from cropai.radiometry import BOA_OFFSET, CANONICAL, Radiometry, for_baseline, parse_baseline
from cropai.raster import file_radiometry
from testkit.realdata import realdata

CROP = ("imagery", "T29UNU_20221005_N0400_L2A_crop")


@pytest.mark.parametrize(
    ("baseline", "offset_dn"),
    [("02.12", 0), ("02.14", 0), ("03.01", 0), ("04.00", -1000), ("05.00", -1000), ("05.09", -1000), ("05.11", -1000)],
)
def test_the_offset_follows_the_processing_baseline(baseline: str, offset_dn: int) -> None:
    assert for_baseline(parse_baseline(baseline)).offset_dn == offset_dn


def test_baselines_are_read_as_each_source_writes_them() -> None:
    assert parse_baseline("04.00") == (4, 0)
    assert parse_baseline("N0509") == (5, 9)
    assert parse_baseline("S2B_MSIL2A_20200914T231559_N0500_R087_T01VCG_20230315T224658") == (5, 0)
    assert parse_baseline("scene.tif") is None
    assert for_baseline(None) is CANONICAL


def test_a_baseline_04_dn_of_1234_is_stored_as_234() -> None:
    dn = np.array([[0, 1234, 1000, 999, 100, 11000]], dtype=np.uint16)
    stored = BOA_OFFSET.to_canonical(dn)
    # nodata stays nodata; a DN at or below the offset is the smallest valid value, never 0
    assert stored.tolist() == [[0, 234, 1, 1, 1, 10000]]
    assert stored.dtype == np.uint16


def test_canonical_digital_numbers_pass_unchanged() -> None:
    dn = np.array([0, 1, 1234, 65535], dtype=np.uint16)
    assert CANONICAL.to_canonical(dn).tolist() == [0, 1, 1234, 65535]


def test_a_stac_scale_and_offset_convert_through_reflectance() -> None:
    # Earth Search c1-l2a: raster:bands scale 0.0001, offset -0.1 is the same as -1000 DN
    assert Radiometry(0.0001, -0.1).offset_dn == -1000
    assert Radiometry(0.0001, -0.1).to_canonical(np.array([1234], dtype=np.uint16)).tolist() == [234]
    # A quantification of 1000 (a reflectance x 1000 product) is rescaled to x 10000
    assert Radiometry.from_dn(0, 1000).to_canonical(np.array([0, 123], dtype=np.uint16)).tolist() == [0, 1230]


def test_the_real_crop_says_its_offset_in_its_tags_and_its_dark_pixels_stay_valid() -> None:
    """Real DNs of a baseline 04.00 product (B04 of T29UNU, values copied unchanged from ESA's JP2)."""
    with rasterio.open(realdata(*CROP, "T29UNU_20221005T115411_B04_60m.tif")) as src:
        radiometry = file_radiometry(src)
        dn = src.read(1)
    assert radiometry.offset_dn == -1000
    stored = radiometry.to_canonical(dn)
    valid = dn > 0
    np.testing.assert_array_equal(stored[valid], np.maximum(dn[valid].astype(np.int32) - 1000, 1))
    assert stored[valid].min() >= 1
    # Before the rule the reddest band read 0.1 too bright: its median now is DN - 1000.
    assert np.median(stored[valid]) == np.median(dn[valid]) - 1000


def test_a_geotiff_without_radiometry_tags_takes_the_users_offset(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=2,
        height=2,
        count=1,
        dtype="uint16",
        crs="EPSG:32631",
        transform=from_origin(500_000, 5_600_000, 10, 10),
        nodata=0,
    ) as dst:
        dst.write(np.full((1, 2, 2), 1500, dtype=np.uint16))
    with rasterio.open(path) as src:
        assert file_radiometry(src) is CANONICAL
        assert file_radiometry(src, Radiometry.from_dn(-1000)).offset_dn == -1000


def test_product_names_give_provenance() -> None:
    seen = SceneProvenance.from_product_name("S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454.SAFE")
    assert seen == SceneProvenance(
        product_id="S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454",
        platform="sentinel-2a",
        mgrs_tile="29UNU",
        relative_orbit=23,
        processing_baseline="04.00",
        processing_level="L2A",
    )
    assert SceneProvenance.from_product_name("scene_2025.tif") == SceneProvenance()


def test_tiles_and_platforms_have_one_spelling() -> None:
    assert mgrs_tile("T31UFS") == mgrs_tile("31ufs") == "31UFS"
    assert mgrs_tile("1KAB") == "01KAB"
    assert mgrs_tile("not a tile") is None
    assert platform_name("Sentinel-2A") == platform_name("S2A") == platform_name("sentinel-2a") == "sentinel-2a"
