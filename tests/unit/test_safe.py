"""Reading Sentinel-2 SAFE products (folders and zips) built from REAL ESA metadata
(testkit.safe_products); the real metadata and JP2s are read directly where that suffices."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cropai import safe as safe_module
from cropai.errors import InvalidScene
from cropai.safe import (
    check_rasters,
    content_hash,
    is_safe,
    open_safe,
    parse_product_metadata,
    parse_tile_grid,
    parse_xml,
)
from cropai.sentinel2 import BANDS
from testkit.realdata import SAFE_0212, SAFE_0214, SAFE_0400, SAFE_0509, SAFE_FOLDER, SAFE_L1C, realdata
from testkit.safe_products import write_escaping_zip, write_safe, write_truncated_zip, write_zip

SIZE_PX = 60  # 10 m grid of the test products: 60 x 60 at 10 m, 30 x 30 at 20 m, 10 x 10 at 60 m
REAL_IMG_DATA = "GRANULE/L2A_T29UNU_A038058_20221005T115407/IMG_DATA"


@dataclass(frozen=True)
class RealProduct:
    """What the real metadata of a product says (see the real material's README, section 1)."""

    template: str
    platform: str
    tile: str
    orbit: int
    baseline: str
    acquired_at: datetime
    offset_dn: int
    crs: str
    origin: tuple[float, float]

    @property
    def product_id(self) -> str:
        return self.template.removeprefix("esa_").removesuffix(".SAFE")


def sensed(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


REAL_PRODUCTS = [
    RealProduct(
        SAFE_0400, "sentinel-2a", "29UNU", 23, "04.00", sensed("2022-10-05T11:54:11.024"), -1000, "EPSG:32629",
        (499980, 5900040),
    ),
    # Antimeridian, UTM zone 1 south.
    RealProduct(
        SAFE_0509, "sentinel-2a", "01KAB", 29, "05.09", sensed("2023-08-21T22:19:41.024"), -1000, "EPSG:32701",
        (99960, 8200000),
    ),
    RealProduct(
        SAFE_0214, "sentinel-2b", "22HBD", 81, "02.14", sensed("2021-01-22T13:32:29.024"), 0, "EPSG:32722",
        (199980, 5900020),
    ),
    # Reprocessed by ESRI in 2020: band files are GeoTIFF, as its MTD's imageFormat says.
    RealProduct(
        SAFE_0212, "sentinel-2a", "07HFE", 13, "02.12", sensed("2019-02-12T19:26:51.024"), 0, "EPSG:32707",
        (600000, 6500020),
    ),
]  # fmt: skip
BY_BASELINE = pytest.mark.parametrize("real", REAL_PRODUCTS, ids=lambda real: real.baseline)


def reason(excinfo: pytest.ExceptionInfo[InvalidScene]) -> str:
    return str(excinfo.value)


# --- Products built from real metadata --------------------------------------------------------


@BY_BASELINE
def test_provenance_comes_from_the_real_metadata(tmp_path: Path, real: RealProduct) -> None:
    product = open_safe(write_safe(tmp_path, real.template, size_px=SIZE_PX))
    provenance = product.provenance
    assert (provenance.product_id, provenance.platform, provenance.mgrs_tile) == (
        real.product_id,
        real.platform,
        real.tile,
    )
    assert (provenance.relative_orbit, provenance.processing_baseline, provenance.processing_level) == (
        real.orbit,
        real.baseline,
        "L2A",
    )


@BY_BASELINE
def test_acquisition_time_is_the_product_start_time_in_utc(tmp_path: Path, real: RealProduct) -> None:
    product = open_safe(write_safe(tmp_path, real.template, size_px=SIZE_PX))
    assert product.acquired_at == real.acquired_at
    assert product.acquired_at.utcoffset() is not None


@BY_BASELINE
def test_boa_offset_follows_the_metadata_of_each_baseline(tmp_path: Path, real: RealProduct) -> None:
    product = open_safe(write_safe(tmp_path, real.template, size_px=SIZE_PX))
    assert product.quantification == 10000
    assert {band: product.radiometry[band].offset_dn for band in BANDS} == dict.fromkeys(BANDS, real.offset_dn)


@BY_BASELINE
def test_band_files_are_found_at_their_finest_resolution(tmp_path: Path, real: RealProduct) -> None:
    product = open_safe(write_safe(tmp_path, real.template, size_px=SIZE_PX))
    resolution = {band: Path(path).parent.name for band, path in product.band_files.items()}
    assert resolution == {
        **dict.fromkeys(["B02", "B03", "B04", "B08"], "R10m"),
        **dict.fromkeys(["B05", "B06", "B07", "B8A", "B11", "B12", "SCL"], "R20m"),
    }


@BY_BASELINE
def test_grid_is_the_tile_grid_of_mtd_tl(tmp_path: Path, real: RealProduct) -> None:
    grid = open_safe(write_safe(tmp_path, real.template, size_px=SIZE_PX)).grid
    assert grid.crs == real.crs
    assert {res: (g.ulx, g.uly, g.nrows, g.ncols) for res, g in grid.resolutions.items()} == {
        10: (*real.origin, SIZE_PX, SIZE_PX),
        20: (*real.origin, SIZE_PX // 2, SIZE_PX // 2),
        60: (*real.origin, SIZE_PX // 6, SIZE_PX // 6),
    }


@BY_BASELINE
def test_rasters_agree_with_the_metadata(tmp_path: Path, real: RealProduct) -> None:
    check_rasters(open_safe(write_safe(tmp_path, real.template, size_px=SIZE_PX)))


def test_members_are_the_metadata_then_the_band_files(tmp_path: Path) -> None:
    product = open_safe(write_safe(tmp_path, size_px=SIZE_PX))
    assert product.members == (
        f"{product.root}/MTD_MSIL2A.xml",
        f"{product.root}/GRANULE/L2A_T29UNU_A038058_20221005T115407/MTD_TL.xml",
        *product.band_files.values(),
    )


# --- The real metadata and JP2s, read directly -----------------------------------------------


@BY_BASELINE
def test_real_product_metadata_parses_without_band_files(real: RealProduct) -> None:
    data = realdata(*SAFE_FOLDER, real.template, "MTD_MSIL2A.xml").read_bytes()
    metadata = parse_product_metadata(parse_xml(data, "MTD_MSIL2A.xml"))
    assert metadata.provenance.product_id == real.product_id
    assert metadata.radiometry["B8A"].offset_dn == real.offset_dn


@BY_BASELINE
def test_real_tile_metadata_gives_the_full_tile_grid(real: RealProduct) -> None:
    (tile_metadata,) = realdata(*SAFE_FOLDER, real.template).glob("GRANULE/*/MTD_TL.xml")
    grid = parse_tile_grid(parse_xml(tile_metadata.read_bytes(), "MTD_TL.xml"))
    assert {res: g.nrows for res, g in grid.resolutions.items()} == {10: 10980, 20: 5490, 60: 1830}


def test_real_folder_without_its_10m_files_names_the_missing_band() -> None:
    # The real 04.00 folder has only R60m bands and SCL: its 10 m JP2s were never published there.
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(realdata(*SAFE_FOLDER, SAFE_0400))
    assert f"SAFE lacks B02: {REAL_IMG_DATA}/R10m/T29UNU_20221005T115411_B02_10m.jp2 is missing" in reason(excinfo)


def test_real_level_1c_folder_is_refused_as_top_of_atmosphere() -> None:
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(realdata(*SAFE_FOLDER, SAFE_L1C))
    assert "Level-1C" in reason(excinfo)
    assert "Level-2A (L2A)" in reason(excinfo)


def test_real_b04_jp2_decodes_to_the_published_values() -> None:
    path = realdata(*SAFE_FOLDER, SAFE_0400, REAL_IMG_DATA, "R60m", "T29UNU_20221005T115411_B04_60m.jp2")
    with rasterio.open(path) as src:
        assert (src.dtypes[0], src.crs.to_epsg(), src.transform.c) == ("uint16", 32629, 499980)
        dn = src.read(1)
    valid = dn[dn > 0]
    assert np.median(valid) == 3254
    assert (valid < 1000).any()  # water and shadow: below the +1000 offset, negative reflectance


def test_real_scl_jp2_is_uint8_classes() -> None:
    path = realdata(*SAFE_FOLDER, SAFE_0400, REAL_IMG_DATA, "R20m", "T29UNU_20221005T115411_SCL_20m.jp2")
    with rasterio.open(path) as src:
        # A full-resolution window: JPEG 2000 overviews are wavelet averages, not classes.
        scl = src.read(1, window=((2000, 2640), (2000, 2640)))
    assert scl.dtype == np.uint8
    assert {3, 4, 8, 9, 10} <= set(np.unique(scl)) <= set(range(12))  # shadow, vegetation, clouds, cirrus


# --- Archives ----------------------------------------------------------------------------------


def test_zip_reads_in_place_through_vsizip(tmp_path: Path) -> None:
    archive = write_safe(tmp_path, size_px=SIZE_PX, zipped=True)
    product = open_safe(archive)
    check_rasters(product)
    assert product.root == f"/vsizip/{archive.resolve()}/{SAFE_0400}"
    assert not (tmp_path / SAFE_0400).exists()


def test_folder_and_zip_of_one_product_have_the_same_content_hash(tmp_path: Path) -> None:
    folder = write_safe(tmp_path / "folder", size_px=SIZE_PX)
    archive = write_safe(tmp_path / "zip", size_px=SIZE_PX, zipped=True)
    assert content_hash(open_safe(folder)) == content_hash(open_safe(archive))


def test_content_hash_changes_with_the_pixels(tmp_path: Path) -> None:
    plain = write_safe(tmp_path / "a", size_px=SIZE_PX)
    brighter = write_safe(tmp_path / "b", size_px=SIZE_PX, fill=1300)
    assert content_hash(open_safe(plain)) != content_hash(open_safe(brighter))


def test_truncated_zip_is_not_a_readable_archive(tmp_path: Path) -> None:
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(write_truncated_zip(tmp_path))
    assert "not a readable zip archive (truncated or corrupt?)" in reason(excinfo)


def test_zip_without_a_safe_folder_is_not_a_safe_archive(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "photos.zip", {"holiday/beach.jpg": b"\xff\xd8", "notes.txt": b"hi"})
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(archive)
    assert "not a SAFE archive: photos.zip holds holiday, notes.txt" in reason(excinfo)


def test_zip_member_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(write_escaping_zip(tmp_path / "evil.zip"))
    assert "'../evil.txt' escapes the archive's folder" in reason(excinfo)


@pytest.mark.parametrize("name", ["/etc/passwd", "C:/evil.txt", "X.SAFE\\..\\evil.txt", "X.SAFE/../../evil.txt"])
def test_absolute_drive_and_backslash_members_are_refused(tmp_path: Path, name: str) -> None:
    archive = write_zip(tmp_path / "evil.zip", {"X.SAFE/MTD_MSIL2A.xml": b"<a/>", name: b"x"})
    with pytest.raises(InvalidScene, match="escapes the archive's folder"):
        open_safe(archive)


def test_zip_lacking_a_band_names_it(tmp_path: Path) -> None:
    archive = write_safe(tmp_path, size_px=SIZE_PX, omit=["B11"], zipped=True)
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(archive)
    assert "SAFE lacks B11: GRANULE/" in reason(excinfo)
    assert "/R20m/T29UNU_20221005T115411_B11_20m.jp2 is missing" in reason(excinfo)


def test_level_1c_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidScene, match=r"Level-1C \(top-of-atmosphere\)"):
        open_safe(write_safe(tmp_path, SAFE_L1C, size_px=SIZE_PX, zipped=True))


def test_safe_folder_without_product_metadata_is_not_a_product(tmp_path: Path) -> None:
    folder = tmp_path / "S2A_EMPTY.SAFE"
    folder.mkdir()
    with pytest.raises(InvalidScene, match=r"not a Sentinel-2 SAFE product: S2A_EMPTY\.SAFE has no MTD_MSIL2A\.xml"):
        open_safe(folder)


# --- Broken products ---------------------------------------------------------------------------


def test_missing_band_file_names_the_band_and_its_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidScene) as excinfo:
        open_safe(write_safe(tmp_path, size_px=SIZE_PX, omit=["B08"]))
    assert f"SAFE lacks B08: {REAL_IMG_DATA}/R10m/T29UNU_20221005T115411_B08_10m.jp2 is missing" == reason(excinfo)


def test_truncated_jp2_does_not_decode(tmp_path: Path) -> None:
    product = open_safe(write_safe(tmp_path, size_px=SIZE_PX, truncate=["B04"], zipped=True))
    with pytest.raises(InvalidScene) as excinfo:
        check_rasters(product)
    assert reason(excinfo).startswith(f"B04 ({product.band_files['B04']}) does not decode as JPEG 2000")


def test_band_on_another_crs_disagrees_with_the_metadata(tmp_path: Path) -> None:
    product = open_safe(write_safe(tmp_path, size_px=SIZE_PX, wrong_crs=["B05"]))
    with pytest.raises(InvalidScene) as excinfo:
        check_rasters(product)
    assert "metadata disagrees with the rasters: B05" in reason(excinfo)
    assert "MTD_TL.xml says EPSG:32629" in reason(excinfo)


def test_band_of_another_size_disagrees_with_the_metadata(tmp_path: Path) -> None:
    product = open_safe(write_safe(tmp_path, size_px=SIZE_PX, wrong_size=["SCL"]))
    with pytest.raises(InvalidScene) as excinfo:
        check_rasters(product)
    assert "metadata disagrees with the rasters: SCL" in reason(excinfo)
    assert "28 x 28 px; MTD_TL.xml says EPSG:32629, 20 m pixels, origin (499980, 5900040), 30 x 30 px" in reason(
        excinfo
    )


def test_without_a_jpeg2000_driver_the_product_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_safe(tmp_path, size_px=SIZE_PX)
    monkeypatch.setattr(safe_module, "gdal_drivers", lambda: frozenset({"GTiff", "MEM"}))
    with pytest.raises(InvalidScene, match=r"this GDAL build cannot decode JPEG 2000 \(no JP2OpenJPEG driver\)"):
        open_safe(folder)


@pytest.mark.parametrize(
    ("text", "replacement", "reason"),
    [
        ("?>", '?>\n<!DOCTYPE x [<!ENTITY big "big">]>', "declares a DTD or entities"),
        ("GRANULE/", "../../GRANULE/", "outside the SAFE folder"),
    ],
    ids=["dtd", "image-file-outside"],
)
def test_hostile_product_metadata_is_refused(tmp_path: Path, text: str, replacement: str, reason: str) -> None:
    folder = write_safe(tmp_path, size_px=SIZE_PX)
    metadata = folder / "MTD_MSIL2A.xml"
    metadata.write_text(metadata.read_text(encoding="utf-8").replace(text, replacement, 1), encoding="utf-8")
    with pytest.raises(InvalidScene, match=reason):
        open_safe(folder)


# --- Recognising a product --------------------------------------------------------------------


def test_is_safe_recognises_safe_folders_and_zips(tmp_path: Path) -> None:
    folder = write_safe(tmp_path / "a", size_px=SIZE_PX)
    renamed = folder.rename(tmp_path / "a" / "scene")
    archive = write_zip(tmp_path / "b.zip", {"x": b""})
    other = tmp_path / "c"
    other.mkdir()
    assert [is_safe(path) for path in (renamed, archive, other, tmp_path / "missing.zip")] == [True, True, False, False]


def test_zip_members_are_read_without_extracting(tmp_path: Path) -> None:
    archive = write_safe(tmp_path, size_px=SIZE_PX, zipped=True)
    before = sorted(tmp_path.rglob("*"))
    content_hash(open_safe(archive))
    assert sorted(tmp_path.rglob("*")) == before
    assert zipfile.is_zipfile(archive)
