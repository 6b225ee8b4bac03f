"""Sentinel-2 SAFE products for tests and benchmarks: the REAL ESA metadata of a product
in the real material (:mod:`testkit.realdata`) with band files written by GDAL.

``MTD_MSIL2A.xml`` (or ``MTD_MSIL1C.xml``) and ``manifest.safe`` are copied unchanged;
``MTD_TL.xml`` is copied with only its ``Size`` (NROWS, NCOLS) rewritten to the test grid.
Band files go where the real ``IMAGE_FILE`` entries say, on the real CRS and origin, as
lossless JPEG 2000 (or GeoTIFF where the real granule says ``imageFormat="GeoTIFF"``).
Defects a test needs (a missing, truncated, misplaced or mis-sized band; a broken or
hostile archive) are options here, so that tests read as the behaviour they check.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from testkit.realdata import SAFE_0400, SAFE_FOLDER, realdata

# Bands Crop AI reads from a SAFE, each at its finest resolution in metres (ESA's L2A layout).
BAND_RESOLUTION_M: dict[str, int] = {
    **{band: 10 for band in ("B02", "B03", "B04", "B08")},
    **{band: 20 for band in ("B05", "B06", "B07", "B8A", "B11", "B12", "SCL")},
}
SIDE_IN_10M_PIXELS = {10: 1, 20: 2, 60: 6}  # a pixel's side at each resolution, in 10 m pixels
SCL_VEGETATION = 4
STRIP_ROWS = 1024  # rows written at a time, so that a full 10980 px tile never sits in memory
BLOCK_PX = 1024  # JPEG 2000 tile size, as ESA's 10 m files
JP2_OPTIONS = {"REVERSIBLE": "YES", "QUALITY": "100", "BLOCKXSIZE": str(BLOCK_PX), "BLOCKYSIZE": str(BLOCK_PX)}
GTIFF_OPTIONS = {"TILED": "YES", "COMPRESS": "DEFLATE", "BLOCKXSIZE": "512", "BLOCKYSIZE": "512"}
GDAL_CACHE_MB = 128  # GDAL's default (5 % of RAM) would cache a whole full-size band while encoding it
EXTENSIONS = {"JPEG2000": ".jp2", "GeoTIFF": ".tif"}


def write_safe(
    folder: Path,
    template: str = SAFE_0400,
    size_px: int = 120,
    bands: Mapping[str, npt.NDArray[np.integer]] | None = None,
    fill: int = 1234,
    omit: Iterable[str] = (),
    zipped: bool = False,
    *,
    scl_fill: int = SCL_VEGETATION,
    texture: bool = False,
    truncate: Iterable[str] = (),
    wrong_crs: Iterable[str] = (),
    wrong_size: Iterable[str] = (),
) -> Path:
    """Write the SAFE product of ``template`` (a folder of the real material) under ``folder``
    on a ``size_px`` x ``size_px`` 10 m grid (20 m: size_px // 2, 60 m: size_px // 6).

    ``bands`` gives a band's DNs at its own resolution (uint16; SCL uint8); other bands
    are ``fill`` (SCL ``scl_fill``), or a smooth pattern around it with ``texture`` (so that
    a benchmark's JPEG 2000 has something to decode). ``omit`` leaves band files out;
    ``truncate`` cuts them to half their bytes; ``wrong_crs`` writes them in the next UTM
    zone and ``wrong_size`` two pixels short each way. Returns the ``X.SAFE`` folder, or
    with ``zipped`` a ``X.zip`` beside it holding ``X.SAFE/`` (the folder is then removed).
    A Level-1C template gets its metadata only. Its name is PRODUCT_URI, as ESA names it.
    """
    if size_px % 6:
        raise ValueError(f"size_px {size_px} must be a multiple of 6 (the 60 m grid is size_px // 6)")
    source = realdata(*SAFE_FOLDER, template)
    safe = folder / template.removeprefix("esa_")  # stactools added "esa_"; PRODUCT_URI has none
    safe.mkdir(parents=True)
    product_metadata = _copy_product_metadata(source, safe)
    tile_metadata = _copy_tile_metadata(source, safe, size_px)
    if product_metadata.name == "MTD_MSIL2A.xml":
        defects = {"truncate": set(truncate), "wrong_crs": set(wrong_crs), "wrong_size": set(wrong_size)}
        left_out = set(omit)
        grid = _TileGrid(tile_metadata.read_text(encoding="utf-8"), size_px)
        layout = product_metadata.read_text(encoding="utf-8")
        for band, relative in _band_files(layout).items():
            if band in left_out:
                continue
            data = (bands or {}).get(band)
            value = scl_fill if band == "SCL" else fill
            _write_band(safe / relative, band, grid, data, value, texture, defects)
    if not zipped:
        return safe
    archive = zip_safe(safe, folder / f"{safe.stem}.zip")
    shutil.rmtree(safe)
    return archive


def _copy_product_metadata(source: Path, safe: Path) -> Path:
    shutil.copyfile(source / "manifest.safe", safe / "manifest.safe")
    for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        if (source / name).is_file():
            shutil.copyfile(source / name, safe / name)
            return safe / name
    raise FileNotFoundError(f"{source} holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml")


def _copy_tile_metadata(source: Path, safe: Path, size_px: int) -> Path:
    """MTD_TL.xml with only NROWS/NCOLS changed: the real tiles are 10980 px at 10 m, too big
    for tests; the real CRS and ULX/ULY are kept, so the test grid is the tile's top-left corner."""
    (original,) = source.glob("GRANULE/*/MTD_TL.xml")
    target = safe / original.relative_to(source)
    target.parent.mkdir(parents=True)

    def resize(match: re.Match[str]) -> str:
        pixels = size_px // SIDE_IN_10M_PIXELS[int(match["resolution"])]
        block = re.sub(r"<NROWS>\d+</NROWS>", f"<NROWS>{pixels}</NROWS>", match[0])
        return re.sub(r"<NCOLS>\d+</NCOLS>", f"<NCOLS>{pixels}</NCOLS>", block)

    text = original.read_text(encoding="utf-8")
    target.write_text(re.sub(r'<Size resolution="(?P<resolution>\d+)">.*?</Size>', resize, text, flags=re.S), "utf-8")
    return target


def _band_files(product_metadata: str) -> dict[str, str]:
    """Each band Crop AI reads -> its file relative to the SAFE root, from the real IMAGE_FILE entries."""
    image_format = re.search(r'imageFormat="([^"]+)"', product_metadata)
    extension = EXTENSIONS[image_format.group(1) if image_format else "JPEG2000"]
    entries = re.findall(r"<IMAGE_FILE>\s*([^<]+?)\s*</IMAGE_FILE>", product_metadata)
    files = {}
    for band, resolution in BAND_RESOLUTION_M.items():
        ending = f"_{band}_{resolution}m"
        files[band] = next(entry for entry in entries if entry.endswith(ending)) + extension
    return files


class _TileGrid:
    """The real tile's CRS and upper-left corner (from MTD_TL.xml) on the test grid's size."""

    def __init__(self, tile_metadata: str, size_px: int) -> None:
        code = re.search(r"<HORIZONTAL_CS_CODE>\s*EPSG:(\d+)", tile_metadata)
        corner = re.search(r'<Geoposition resolution="10">\s*<ULX>([^<]+)</ULX>\s*<ULY>([^<]+)</ULY>', tile_metadata)
        assert code and corner, "MTD_TL.xml lacks HORIZONTAL_CS_CODE or the 10 m Geoposition"
        self.epsg = int(code.group(1))
        self.ulx, self.uly = float(corner.group(1)), float(corner.group(2))
        self.size_px = size_px

    def profile(self, resolution_m: int, wrong_crs: bool, wrong_size: bool) -> dict[str, object]:
        pixels = self.size_px // SIDE_IN_10M_PIXELS[resolution_m] - (2 if wrong_size else 0)
        # The next UTM zone of the same hemisphere (32629 -> 32630): the same numbers, another place.
        epsg = self.epsg + (1 if self.epsg % 100 < 60 else -1) if wrong_crs else self.epsg
        transform = Affine(resolution_m, 0, self.ulx, 0, -resolution_m, self.uly)
        return {"width": pixels, "height": pixels, "crs": f"EPSG:{epsg}", "transform": transform}


def _write_band(
    path: Path,
    band: str,
    grid: _TileGrid,
    data: npt.NDArray[np.integer] | None,
    value: int,
    texture: bool,
    defects: Mapping[str, set[str]],
) -> None:
    """One band file, written strip by strip into a scratch GeoTIFF that GDAL then encodes."""
    profile = grid.profile(BAND_RESOLUTION_M[band], band in defects["wrong_crs"], band in defects["wrong_size"])
    if data is not None:
        profile.update(width=data.shape[1], height=data.shape[0])
    dtype = "uint8" if band == "SCL" else "uint16"
    scratch = path.with_name(f"{path.stem}.scratch.tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with rasterio.open(scratch, "w", driver="GTiff", count=1, dtype=dtype, tiled=True, **profile) as dst:
            for row in range(0, dst.height, STRIP_ROWS):
                window = Window(0, row, dst.width, min(STRIP_ROWS, dst.height - row))
                dst.write(_strip(data, window, value, texture and band != "SCL").astype(dtype), 1, window=window)
        _encode(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    if band in defects["truncate"]:
        truncate_file(path)


def _strip(data: npt.NDArray[np.integer] | None, window: Window, value: int, texture: bool) -> npt.NDArray[np.integer]:
    rows, cols = slice(window.row_off, window.row_off + window.height), slice(0, window.width)
    if data is not None:
        return data[rows, cols]
    if not texture:
        return np.full((window.height, window.width), value, dtype=np.int32)
    y, x = np.ogrid[rows, cols]
    # Smooth "fields" a few hundred metres across, +-20 % around the fill value.
    return (value * (1 + 0.2 * np.sin(x / 37.0) * np.cos(y / 29.0))).astype(np.int32)


def _encode(scratch: Path, path: Path) -> None:
    """Lossless JPEG 2000 with ESA's 1024 px tiles and a few resolution levels (or tiled GeoTIFF)."""
    if path.suffix == ".tif":
        rasterio.shutil.copy(str(scratch), str(path), driver="GTiff", **GTIFF_OPTIONS)
        return
    with rasterio.open(scratch) as src:
        smallest = min(src.width, src.height, BLOCK_PX)
    levels = 1
    while levels < 5 and smallest >> levels >= 16:  # each level halves; stop at about 32 px
        levels += 1
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        rasterio.shutil.copy(str(scratch), str(path), driver="JP2OpenJPEG", RESOLUTIONS=str(levels), **JP2_OPTIONS)


def truncate_file(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes, as an interrupted download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def zip_safe(safe: Path, archive: Path) -> Path:
    """``archive`` holding ``safe`` as its one top-level folder, with folder entries as the
    Copernicus Data Space writes them; JPEG 2000 files stored, metadata deflated."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted([safe, *safe.rglob("*")]):
            name = path.relative_to(safe.parent).as_posix()
            compression = zipfile.ZIP_STORED if path.suffix == ".jp2" else zipfile.ZIP_DEFLATED
            zf.write(path, name + ("/" if path.is_dir() else ""), compress_type=compression)
    return archive


def write_zip(archive: Path, members: Mapping[str, bytes]) -> Path:
    """A zip with exactly these member names and contents (names are not checked: hostile ones are the point)."""
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return archive


def write_escaping_zip(archive: Path, template: str = SAFE_0400) -> Path:
    """A SAFE archive with a member ``../evil.txt`` that would land outside the folder it is extracted to."""
    safe = template.removeprefix("esa_")
    metadata = realdata(*SAFE_FOLDER, template, "MTD_MSIL2A.xml").read_bytes()
    return write_zip(archive, {f"{safe}/MTD_MSIL2A.xml": metadata, "../evil.txt": b"outside the archive's folder"})


def write_truncated_zip(folder: Path, template: str = SAFE_0400, size_px: int = 60) -> Path:
    """A SAFE archive cut in half, as an interrupted download leaves it (its central directory is gone)."""
    return truncate_file(write_safe(folder, template, size_px=size_px, zipped=True))
