"""Scene rasters: recognise bands, validate, assemble the canonical band stack as a
COG, and measure footprint and cloud cover.

Every ingested scene is rewritten to one layout: a COG with the ten reflectance
bands of :data:`cropai.sentinel2.BANDS` in order (uint16, nodata 0), then SCL when
the source has it, on the grid of its finest band, in the canonical radiometry of
:mod:`cropai.radiometry`. Sources may be one multi-band file or one file per band
(as STAC APIs and SAFE products serve Sentinel-2 L2A, 20 m bands next to 10 m ones;
SCL as uint8); :func:`write_cog` stacks, resamples and converts them strip by strip,
never holding a whole scene in memory.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
import shapely
from affine import Affine
from rasterio import windows
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.features import shapes
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_geom
from rasterio.windows import Window

from cropai import sentinel2
from cropai.db import as_utc
from cropai.errors import InvalidScene
from cropai.radiometry import CANONICAL, Radiometry, for_baseline, parse_baseline
from cropai.storage import GDAL_CACHE_MB, ObjectStore

# What GDAL raises for unreadable or malformed input (not for our own mistakes).
GDAL_ERRORS = (RasterioError, CPLE_BaseError)

# Names by which providers label Sentinel-2 bands: band ids, STAC common names and
# the asset keys of public STAC APIs (Earth Search uses "nir08", Planetary Computer "B8A").
BAND_ALIASES: dict[str, str] = {
    **{name.lower(): name for name in (*sentinel2.BANDS, sentinel2.SCL_BAND)},
    "b8": "B08",
    "b2": "B02",
    "b3": "B03",
    "b4": "B04",
    "b5": "B05",
    "b6": "B06",
    "b7": "B07",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "swir16": "B11",
    "swir22": "B12",
    "scene_classification": "SCL",
}
# Continuous bands are resampled bilinearly onto the finest grid; classes by nearest neighbour.
RESAMPLING = {sentinel2.SCL_BAND: Resampling.nearest}
TILE_PX = 512
# Rows copied at a time: two output tile rows, one block row of ESA's 1024 px JPEG 2000 tiles
# (a 512-row strip made OpenJPEG decode each block twice: 2.9 s against 1.7 s for a 10 m band).
STRIP_ROWS = 2 * TILE_PX
SCRATCH_IN_MEMORY_MB = 256  # per scene being ingested; larger scenes use a scratch file
DATETIME_TAGS = ("ACQUISITION_DATETIME", "DATATAKE_SENSING_START", "SENSING_TIME", "datetime")
# 20250415T103021 as in Sentinel-2 product names, else a bare 20250415.
FILE_NAME_TIME = re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)|(?<!\d)(20\d{6})(?!\d)")
FOOTPRINT_MAX_PIXELS = 1024  # the mask is read at about this size for footprint and cloud cover
# SCL holds classes: ESA's JP2s and the STAC APIs' COGs deliver it as uint8.
ALLOWED_DTYPES = {sentinel2.SCL_BAND: ("uint8", "uint16")}
REFLECTANCE_DTYPES = ("uint16",)
# Tags that say a GeoTIFF's digital numbers carry an offset (ESA's names, kept by most exports).
OFFSET_TAG = "BOA_ADD_OFFSET"
QUANTIFICATION_TAG = "BOA_QUANTIFICATION_VALUE"


def canonical_band(name: str | None) -> str | None:
    """The Sentinel-2 band id for a provider's band or asset name, or None."""
    if not name:
        return None
    return BAND_ALIASES.get(name.strip().lower().replace(" ", "_"))


@dataclass(frozen=True)
class SourceFile:
    """One file of a scene as its source describes it: a local or GDAL path, its band names
    (None: from a band mapping or the file's descriptions) and the radiometry of its digital
    numbers (None: from the file's own scale/offset or tags, else the ingest's default)."""

    path: str
    bands: Sequence[str | None] | None = None
    radiometry: Radiometry | None = None


@dataclass(frozen=True)
class BandSource:
    """Where one band of the canonical stack comes from: ``band_index`` (1-based) of ``path``,
    and how its digital numbers become canonical ones."""

    band: str
    path: str
    band_index: int
    radiometry: Radiometry = CANONICAL


@dataclass(frozen=True)
class SceneLayout:
    """The canonical stack of one scene and the grid (finest band) it is written on."""

    sources: tuple[BandSource, ...]
    crs: str
    transform: Affine
    width: int
    height: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def bands(self) -> list[str]:
        return [s.band for s in self.sources]

    @property
    def resolution_m(self) -> float:
        return abs(self.transform.a)

    @property
    def radiometry(self) -> Radiometry:
        """The radiometry of the reflectance bands' sources (the first that is not canonical)."""
        return next(
            (s.radiometry for s in self.sources if s.band != sentinel2.SCL_BAND and not s.radiometry.is_canonical),
            CANONICAL,
        )


def plan_layout(
    files: Sequence[SourceFile | tuple[str, Sequence[str | None] | None]],
    band_mapping: Sequence[str | None] | None = None,
    default_radiometry: Radiometry = CANONICAL,
) -> SceneLayout:
    """Recognise the bands of a scene's files and check they can be stacked.

    ``files`` are :class:`SourceFile` records or (path, band names) pairs. Names come from
    the source (a STAC asset's key or ``eo:bands``); when None, the file's bands are named
    by ``band_mapping`` (one name per band, None to skip) or by its band descriptions. A file
    without a radiometry of its own (see :func:`file_radiometry`) gets ``default_radiometry``.
    Raises :class:`InvalidScene` with the reason when the scene cannot be used.
    """
    found: dict[str, tuple[BandSource, rasterio.DatasetReader]] = {}
    tags: dict[str, str] = {}
    opened = []
    try:
        for entry in files:
            file = entry if isinstance(entry, SourceFile) else SourceFile(*entry)
            src = _open(file.path)
            opened.append(src)
            _check_georeferencing(src, file.path)
            names = _band_names(src, file.bands, band_mapping)
            _check_pixels(src, file.path, names)
            reflectance = any(name and name != sentinel2.SCL_BAND for name in names)
            radiometry = file.radiometry or (file_radiometry(src, default_radiometry) if reflectance else CANONICAL)
            tags.update(src.tags())
            for index, name in enumerate(names, start=1):
                if name and name not in found:
                    own = CANONICAL if name == sentinel2.SCL_BAND else radiometry
                    found[name] = (BandSource(name, file.path, index, own), src)
        return _stacked_layout(found, tags)
    finally:
        for src in opened:
            src.close()


def file_radiometry(src: rasterio.DatasetReader, default: Radiometry = CANONICAL) -> Radiometry:
    """What a GeoTIFF says of its digital numbers: GDAL's band scale and offset when set,
    else ESA's ``BOA_ADD_OFFSET`` (and ``BOA_QUANTIFICATION_VALUE``) tags, else a
    ``PROCESSING_BASELINE`` tag (04.00 and later carry the offset), else ``default``
    (what the user said, ``--radiometric-offset``)."""
    scales, offsets = src.scales or (), src.offsets or ()
    if scales and offsets and (scales[0] not in (None, 1.0) or offsets[0] not in (None, 0.0)):
        return Radiometry(float(scales[0] or 1.0), float(offsets[0] or 0.0))
    tags = {**src.tags(), **src.tags(1)}
    if tags.get(OFFSET_TAG) not in (None, ""):
        try:
            return Radiometry.from_dn(float(tags[OFFSET_TAG]), float(tags.get(QUANTIFICATION_TAG) or 10_000))
        except ValueError as exc:
            raise InvalidScene(f"unreadable radiometry tags ({OFFSET_TAG}={tags[OFFSET_TAG]!r}): {exc}") from None
    baseline = parse_baseline(tags.get("PROCESSING_BASELINE"))
    if baseline is not None:
        return for_baseline(baseline)
    return default


def _stacked_layout(found: dict[str, tuple[BandSource, rasterio.DatasetReader]], tags: dict[str, str]) -> SceneLayout:
    """The canonical stack of the bands found, on the grid of the finest; refused unless every
    reflectance band is there, in one CRS and over one extent."""
    missing = [b for b in sentinel2.BANDS if b not in found]
    if missing:
        raise InvalidScene(
            f"missing bands {', '.join(missing)}: expected {', '.join(sentinel2.BANDS)} "
            "named by band descriptions, STAC asset names or a band_mapping"
        )
    order = [*sentinel2.BANDS, *([sentinel2.SCL_BAND] if sentinel2.SCL_BAND in found else [])]
    crs_names = {found[b][1].crs.to_string() for b in order}
    if len(crs_names) > 1:
        raise InvalidScene(f"bands are in different CRSs ({', '.join(sorted(crs_names))})")
    finest = min((found[b][1] for b in sentinel2.BANDS), key=lambda s: abs(s.transform.a))
    for band in order:
        _check_same_extent(found[band][1], finest, band)
    return SceneLayout(
        sources=tuple(found[b][0] for b in order),
        crs=finest.crs.to_string(),
        transform=finest.transform,
        width=finest.width,
        height=finest.height,
        tags=tags,
    )


def _open(path: str) -> rasterio.DatasetReader:
    try:
        return rasterio.open(path)
    except GDAL_ERRORS as exc:
        raise InvalidScene(f"not a readable raster: {gdal_reason(exc)}") from None


def _check_georeferencing(src: rasterio.DatasetReader, path: str) -> None:
    name = Path(path).name
    if src.crs is None:
        raise InvalidScene(f"{name} has no CRS: expected a georeferenced raster (e.g. UTM)")
    if src.transform.b or src.transform.d:
        raise InvalidScene(f"{name} is rotated: expected a north-up grid")


def _check_pixels(src: rasterio.DatasetReader, path: str, names: Sequence[str | None]) -> None:
    """Reflectance is uint16; SCL may also be uint8 (its classes fit); nodata is 0."""
    name = Path(path).name
    for band, dtype in zip(names, src.dtypes, strict=True):
        if band is not None and dtype not in ALLOWED_DTYPES.get(band or "", REFLECTANCE_DTYPES):
            what = "uint8 or uint16 scene classes" if band == sentinel2.SCL_BAND else "uint16 surface reflectance"
            raise InvalidScene(f"{name} has dtype {dtype} for {band}: expected {what}")
    if src.nodata not in (None, 0):
        raise InvalidScene(f"{name} has nodata {src.nodata:g}: expected 0 (the Sentinel-2 convention)")


def _band_names(
    src: rasterio.DatasetReader,
    source_names: Sequence[str | None] | None,
    band_mapping: Sequence[str | None] | None,
) -> list[str | None]:
    if source_names is not None:
        if len(source_names) != src.count:
            raise InvalidScene(
                f"the source names {len(source_names)} bands ({', '.join(map(str, source_names))}) "
                f"but the file has {src.count}"
            )
        return [canonical_band(name) for name in source_names]
    if band_mapping is not None:
        if len(band_mapping) != src.count:
            raise InvalidScene(f"band_mapping names {len(band_mapping)} bands but the file has {src.count}")
        names = [canonical_band(name) for name in band_mapping]
        unknown = [m for m, n in zip(band_mapping, names, strict=True) if m and not n]
        if unknown:
            raise InvalidScene(f"band_mapping has unknown band names {unknown}")
        return names
    return [canonical_band(description) for description in src.descriptions]


def _check_same_extent(src: rasterio.DatasetReader, finest: rasterio.DatasetReader, band: str) -> None:
    tolerance = abs(src.transform.a)  # within one of its own pixels
    if any(abs(a - b) > tolerance for a, b in zip(src.bounds, finest.bounds, strict=True)):
        raise InvalidScene(f"band {band} covers {tuple(src.bounds)}, not the scene's {tuple(finest.bounds)}")


def write_cog(layout: SceneLayout, tags: dict[str, str], out_path: Path) -> None:
    """Write the canonical stack as a COG (ZSTD with predictor, 512 px tiles, nearest overviews).

    Strips of 1024 rows are copied band by band into a tiled, band-interleaved
    scratch file (bands on a coarser grid are resampled on read), overviews are
    built there and GDAL's COG driver lays the result out; at no point is more
    than one strip of the scene in memory. This is about three times faster than
    letting GDAL re-tile a striped, pixel-interleaved source and compute its
    overviews itself. A source whose pixels cannot be read (truncated, corrupt)
    raises :class:`InvalidScene`.
    """
    scratch = _scratch_path(layout, out_path)
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_NUM_THREADS=str(os.cpu_count() or 1)):
            _write_stack(layout, tags, scratch)
            with rasterio.open(scratch, "r+") as dst:
                dst.build_overviews(_overview_factors(layout.width, layout.height), Resampling.nearest)
            rasterio.shutil.copy(
                scratch,
                str(out_path),
                driver="COG",
                COMPRESS="ZSTD",
                LEVEL="1",
                PREDICTOR="2",
                BLOCKSIZE=str(TILE_PX),
                OVERVIEWS="FORCE_USE_EXISTING",
                BIGTIFF="IF_SAFER",
                NUM_THREADS="ALL_CPUS",
            )
    except GDAL_ERRORS as exc:
        out_path.unlink(missing_ok=True)
        raise InvalidScene(f"pixel data cannot be read (truncated or corrupt?): {gdal_reason(exc)}") from None
    finally:
        if scratch.startswith("/vsimem/"):
            if rasterio.shutil.exists(scratch):
                rasterio.shutil.delete(scratch)
        else:
            Path(scratch).unlink(missing_ok=True)


def _scratch_path(layout: SceneLayout, out_path: Path) -> str:
    """In memory (GDAL's /vsimem/) for scenes up to SCRATCH_IN_MEMORY_MB, else a file beside the output:
    most scenes then never touch the disk before the finished COG."""
    size_mb = layout.width * layout.height * len(layout.sources) * 2 * 4 / 3 / 1e6  # with overviews
    if size_mb <= SCRATCH_IN_MEMORY_MB:
        return f"/vsimem/cropai-{uuid.uuid4().hex}.tif"
    return str(out_path.with_name(f"{out_path.stem}.scratch.tif"))


def _write_stack(layout: SceneLayout, tags: dict[str, str], path: str) -> None:
    """Copy the layout's bands into a tiled, band-interleaved GeoTIFF at ``path``, one strip of rows at a time."""
    by_file: dict[str, list[tuple[int, BandSource]]] = {}
    for number, source in enumerate(layout.sources, start=1):
        by_file.setdefault(source.path, []).append((number, source))
    with ExitStack() as stack:
        dst = stack.enter_context(rasterio.open(path, "w", **_stack_profile(layout)))
        sources = [(stack.enter_context(rasterio.open(file)), bands) for file, bands in by_file.items()]
        for row in range(0, layout.height, STRIP_ROWS):
            window = Window(0, row, layout.width, min(STRIP_ROWS, layout.height - row))
            for src, bands in sources:
                _copy_strip(src, bands, dst, window, layout)
        dst.descriptions = tuple(layout.bands)
        dst.update_tags(**{**layout.tags, **tags})


def _stack_profile(layout: SceneLayout) -> dict[str, Any]:
    """The scratch file's creation options: uncompressed, so that strips go in and overviews come out fast."""
    return {
        "driver": "GTiff",
        "width": layout.width,
        "height": layout.height,
        "count": len(layout.sources),
        "dtype": "uint16",
        "crs": layout.crs,
        "transform": layout.transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": TILE_PX,
        "blockysize": TILE_PX,
        "interleave": "band",
        "compress": "none",
        "bigtiff": "if_safer",
    }


def _copy_strip(
    src: rasterio.DatasetReader,
    bands: list[tuple[int, BandSource]],
    dst: rasterio.io.DatasetWriter,
    window: Window,
    layout: SceneLayout,
) -> None:
    """Write ``window`` of the stack's ``bands`` (stack band number, source) from ``src``."""
    if src.transform == layout.transform and src.shape == (layout.height, layout.width):
        # Same grid: one plain read of every band this file gives.
        data = src.read([source.band_index for _, source in bands], window=window)
        dst.write(_canonical(data, bands), [number for number, _ in bands], window=window)
        return
    # A coarser (e.g. 20 m) file: its window resampled onto ours.
    src_window = windows.from_bounds(*windows.bounds(window, layout.transform), transform=src.transform)
    for resampling, group in _by_resampling(bands).items():
        indexes = [source.band_index for _, source in group]
        data = _whole_factor_nearest(src, indexes, window, layout) if resampling == Resampling.nearest else None
        if data is None:
            data = src.read(
                indexes,
                window=src_window,
                out_shape=(len(group), int(window.height), int(window.width)),
                resampling=resampling,
                boundless=True,
                fill_value=0,
            )
        dst.write(_canonical(data, group), [number for number, _ in group], window=window)


def _whole_factor_nearest(
    src: rasterio.DatasetReader, indexes: list[int], window: Window, layout: SceneLayout
) -> npt.NDArray[np.integer] | None:
    """Nearest-neighbour upsampling by a whole factor on aligned grids (SCL at 20 m onto 10 m, as
    in every SAFE product) as a plain read repeated in numpy: the same pixels as GDAL's resampled
    read, which on a JPEG 2000 took tens of seconds a strip. None when the grids do not line up."""
    factor = src.transform.a / layout.transform.a
    col = (layout.transform.c + window.col_off * layout.transform.a - src.transform.c) / src.transform.a
    row = (layout.transform.f + window.row_off * layout.transform.e - src.transform.f) / src.transform.e
    whole = all(abs(v - round(v)) < 1e-6 for v in (factor, col, row))
    if not whole or round(factor) < 2 or src.transform.e != -src.transform.a:
        return None
    step = round(factor)
    native = Window(round(col), round(row), math.ceil(window.width / step), math.ceil(window.height / step))
    if native.col_off < 0 or native.row_off < 0 or native.col_off + native.width > src.width:
        return None
    if native.row_off + native.height > src.height:
        return None
    data: npt.NDArray[np.integer] = src.read(indexes, window=native)
    return data.repeat(step, axis=1).repeat(step, axis=2)[:, : int(window.height), : int(window.width)]


def _canonical(data: npt.NDArray[np.integer], bands: list[tuple[int, BandSource]]) -> npt.NDArray[np.uint16]:
    """A strip's ``(band, y, x)`` digital numbers in the canonical radiometry, band by band."""
    if all(source.radiometry.is_canonical for _, source in bands):
        return data.astype(np.uint16, copy=False)
    return np.stack([source.radiometry.to_canonical(plane) for plane, (_, source) in zip(data, bands, strict=True)])


def _by_resampling(bands: list[tuple[int, BandSource]]) -> dict[Resampling, list[tuple[int, BandSource]]]:
    groups: dict[Resampling, list[tuple[int, BandSource]]] = {}
    for number, source in bands:
        groups.setdefault(RESAMPLING.get(source.band, Resampling.bilinear), []).append((number, source))
    return groups


def _overview_factors(width: int, height: int) -> list[int]:
    """2, 4, 8, ... until the smallest overview fits in one tile."""
    factors, factor = [], 2
    while max(width, height) / (factor // 2) > TILE_PX:
        factors.append(factor)
        factor *= 2
    return factors


@dataclass(frozen=True)
class SceneMeasures:
    """What ingestion records of a scene's pixels."""

    footprint_wgs84: dict[str, Any]  # GeoJSON Polygon or MultiPolygon, EPSG:4326
    bbox_wgs84: tuple[float, float, float, float]
    valid_fraction: float
    cloud_fraction: float | None  # share of valid pixels flagged cloud or cirrus by SCL


def measure_scene(path: Path) -> SceneMeasures:
    """Footprint (outline of valid data, EPSG:4326) and SCL cloud cover, read at reduced resolution."""
    with rasterio.open(path) as src:
        factor = max(1, math.ceil(max(src.width, src.height) / FOOTPRINT_MAX_PIXELS))
        shape = (math.ceil(src.height / factor), math.ceil(src.width / factor))
        valid = src.dataset_mask(out_shape=shape) > 0
        if not valid.any():
            raise InvalidScene("every pixel is nodata")
        transform = src.transform @ Affine.scale(src.width / shape[1], src.height / shape[0])
        scl = None
        if sentinel2.SCL_BAND in src.descriptions:
            scl = src.read(src.descriptions.index(sentinel2.SCL_BAND) + 1, out_shape=shape)
        crs = src.crs
    outline = shapely.union_all(
        [shapely.geometry.shape(geom) for geom, value in shapes(valid.astype(np.uint8), transform=transform) if value]
    )
    outline = outline.simplify(abs(transform.a), preserve_topology=True)
    outline = shapely.segmentize(outline, max_segment_length=abs(transform.a) * 64)
    footprint = transform_geom(crs, "EPSG:4326", shapely.geometry.mapping(outline))
    bbox = shapely.geometry.shape(footprint).bounds
    cloud = None if scl is None else sentinel2.cloud_fraction(scl)
    return SceneMeasures(footprint, bbox, float(valid.mean()), cloud)


def read_window(
    store: ObjectStore, key: str, crs: str, transform: Affine, width: int, height: int
) -> npt.NDArray[np.uint16]:
    """The ``(band, y, x)`` uint16 pixels of a stored scene on a target grid window.

    A scene on the grid (same CRS and pixel size, pixels aligned: the usual case within an
    MGRS tile) is read plainly, only the COG blocks under the window. Any other is warped on
    the fly (nearest neighbour, so SCL classes stay classes). Both give the same pixels;
    those the scene does not cover are 0 (nodata).
    """
    with store.gdal_env(), rasterio.open(store.gdal_path(key)) as src:
        offset = aligned_offset(src, crs, transform)
        if offset is not None:
            return _plain_window(src, *offset, width, height)
        with WarpedVRT(
            src, crs=crs, transform=transform, width=width, height=height, resampling=Resampling.nearest, nodata=0
        ) as vrt:
            pixels: npt.NDArray[np.uint16] = vrt.read()
    return pixels


ALIGNMENT_TOLERANCE_PX = 1e-6


def aligned_offset(src: rasterio.DatasetReader, crs: str, transform: Affine) -> tuple[int, int] | None:
    """The (row, col) of the target window's first pixel in the scene's pixels when the two
    grids coincide (same CRS, same north-up pixel size, whole-pixel offset); None otherwise."""
    scene = src.transform
    if src.crs is None or src.crs != CRS.from_user_input(crs):
        return None
    if scene.b or scene.d or transform.b or transform.d:
        return None
    if not (math.isclose(scene.a, transform.a) and math.isclose(scene.e, transform.e)):
        return None
    col, row = (transform.c - scene.c) / scene.a, (transform.f - scene.f) / scene.e
    if abs(col - round(col)) > ALIGNMENT_TOLERANCE_PX or abs(row - round(row)) > ALIGNMENT_TOLERANCE_PX:
        return None
    return round(row), round(col)


def _plain_window(src: rasterio.DatasetReader, row: int, col: int, width: int, height: int) -> npt.NDArray[np.uint16]:
    """The window at (row, col) of the scene's own pixels; 0 where it lies outside the scene."""
    pixels = np.zeros((src.count, height, width), dtype=np.uint16)
    top, left = max(row, 0), max(col, 0)
    bottom, right = min(row + height, src.height), min(col + width, src.width)
    if bottom > top and right > left:
        inside = src.read(window=Window(left, top, right - left, bottom - top))
        pixels[:, top - row : bottom - row, left - col : right - col] = inside
    return pixels


def acquisition_time_from(tags: dict[str, str], file_name: str) -> datetime | None:
    """A scene's acquisition time (UTC) from its tags, else from a date in its file name."""
    for tag in DATETIME_TAGS:
        if tags.get(tag):
            try:
                moment = datetime.fromisoformat(tags[tag].replace("Z", "+00:00"))
            except ValueError:
                continue
            return as_utc(moment)
    match = FILE_NAME_TIME.search(file_name)
    if match is None:
        return None
    stamp = match.group(1) or match.group(2)
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S" if "T" in stamp else "%Y%m%d").replace(tzinfo=UTC)


def gdal_reason(exc: BaseException) -> str:
    """GDAL's own first complaint ("Stream too short"), not rasterio's "See previous exception"."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
