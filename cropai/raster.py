"""Scene rasters: recognise bands, validate, assemble the canonical band stack as a
COG, and measure footprint and cloud cover.

Every ingested scene is rewritten to one layout: a COG with the ten reflectance
bands of :data:`cropai.sentinel2.BANDS` in order (uint16, nodata 0), then SCL when
the source has it, on the grid of its finest band. Sources may be one multi-band
file or one file per band (as STAC APIs serve Sentinel-2 L2A, 20 m bands next to
10 m ones); a GDAL VRT stacks and resamples them, and GDAL's COG driver writes the
result without holding the scene in memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
import shapely
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.features import shapes
from rasterio.warp import transform_geom

from cropai import sentinel2
from cropai.errors import InvalidScene

# What GDAL raises for unreadable or malformed input (not for our own mistakes).
GDAL_ERRORS = (RasterioError, CPLE_BaseError)

# Names by which providers label Sentinel-2 bands: band ids, STAC common names and
# the asset keys of public STAC APIs (Earth Search uses "nir08", Planetary Computer "B8A").
BAND_ALIASES: dict[str, str] = {
    **{name.lower(): name for name in (*sentinel2.BANDS, sentinel2.SCL_BAND)},
    "b8": "B08", "b2": "B02", "b3": "B03", "b4": "B04", "b5": "B05", "b6": "B06", "b7": "B07",
    "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12",
    "scene_classification": "SCL",
}  # fmt: skip
# Continuous bands are resampled bilinearly onto the finest grid; classes by nearest neighbour.
RESAMPLING = {sentinel2.SCL_BAND: "nearest"}
FOOTPRINT_MAX_PIXELS = 1024  # the mask is read at about this size for footprint and cloud cover


def canonical_band(name: str | None) -> str | None:
    """The Sentinel-2 band id for a provider's band or asset name, or None."""
    if not name:
        return None
    return BAND_ALIASES.get(name.strip().lower().replace(" ", "_"))


@dataclass(frozen=True)
class BandSource:
    """Where one band of the canonical stack comes from: ``band_index`` (1-based) of ``path``."""

    band: str
    path: str
    band_index: int


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


def plan_layout(
    files: Sequence[tuple[str, Sequence[str | None] | None]],
    band_mapping: Sequence[str | None] | None = None,
) -> SceneLayout:
    """Recognise the bands of a scene's files and check they can be stacked.

    ``files`` are (local path, band names) pairs. Names come from the source (a
    STAC asset's key or ``eo:bands``); when None, the file's bands are named by
    ``band_mapping`` (one name per band, None to skip) or by its band descriptions.
    Raises :class:`InvalidScene` with the reason when the scene cannot be used.
    """
    found: dict[str, tuple[BandSource, rasterio.DatasetReader]] = {}
    tags: dict[str, str] = {}
    opened = []
    try:
        for path, source_names in files:
            src = _open(path)
            opened.append(src)
            _check_pixels(src, path)
            names = _band_names(src, source_names, band_mapping)
            tags.update(src.tags())
            for index, name in enumerate(names, start=1):
                if name and name not in found:
                    found[name] = (BandSource(name, path, index), src)
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
    finally:
        for src in opened:
            src.close()


def _open(path: str) -> rasterio.DatasetReader:
    try:
        return rasterio.open(path)
    except GDAL_ERRORS as exc:
        raise InvalidScene(f"not a readable raster: {_gdal_reason(exc)}") from None


def _check_pixels(src: rasterio.DatasetReader, path: str) -> None:
    name = Path(path).name
    if src.crs is None:
        raise InvalidScene(f"{name} has no CRS: expected a georeferenced raster (e.g. UTM)")
    if src.transform.b or src.transform.d:
        raise InvalidScene(f"{name} is rotated: expected a north-up grid")
    if any(dtype != "uint16" for dtype in src.dtypes):
        raise InvalidScene(
            f"{name} has dtype {src.dtypes[0]}: expected uint16 surface reflectance x 10000"
        )
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
            raise InvalidScene(
                f"band_mapping names {len(band_mapping)} bands but the file has {src.count}"
            )
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


def stack_vrt(layout: SceneLayout, extra_tags: dict[str, str]) -> str:
    """A GDAL VRT (XML) presenting the canonical band stack on the layout's grid."""
    bands = []
    for number, source in enumerate(layout.sources, start=1):
        with rasterio.open(source.path) as src:
            src_width, src_height, src_transform = src.width, src.height, src.transform
        scale_x = src_transform.a / layout.transform.a
        scale_y = src_transform.e / layout.transform.e
        x_off = (src_transform.c - layout.transform.c) / layout.transform.a
        y_off = (src_transform.f - layout.transform.f) / layout.transform.e
        bands.append(
            f'<VRTRasterBand dataType="UInt16" band="{number}">'
            f"<Description>{source.band}</Description><NoDataValue>0</NoDataValue>"
            f'<ComplexSource resampling="{RESAMPLING.get(source.band, "bilinear")}">'
            f'<SourceFilename relativeToVRT="0">{escape(source.path)}</SourceFilename>'
            f"<SourceBand>{source.band_index}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{src_width}" ySize="{src_height}"/>'
            f'<DstRect xOff="{x_off:.6f}" yOff="{y_off:.6f}" xSize="{src_width * scale_x:.6f}" '
            f'ySize="{src_height * scale_y:.6f}"/><NODATA>0</NODATA></ComplexSource></VRTRasterBand>'
        )
    metadata = "".join(
        f'<MDI key="{escape(k)}">{escape(str(v))}</MDI>' for k, v in {**layout.tags, **extra_tags}.items()
    )
    geotransform = ", ".join(repr(v) for v in layout.transform.to_gdal())
    return (
        f'<VRTDataset rasterXSize="{layout.width}" rasterYSize="{layout.height}">'
        f"<SRS>{escape(rasterio.crs.CRS.from_string(layout.crs).to_wkt())}</SRS>"
        f"<GeoTransform>{geotransform}</GeoTransform><Metadata>{metadata}</Metadata>"
        f"{''.join(bands)}</VRTDataset>"
    )


def write_cog(layout: SceneLayout, extra_tags: dict[str, str], out_path: Path) -> None:
    """Write the canonical stack as a COG (ZSTD, 512 px tiles, overviews), streaming through GDAL.

    A source whose pixels cannot be read (truncated, corrupt) raises :class:`InvalidScene`.
    """
    vrt_path = out_path.with_suffix(".vrt")
    vrt_path.write_text(stack_vrt(layout, extra_tags), encoding="utf-8")
    try:
        with rasterio.Env(GDAL_NUM_THREADS=str(os.cpu_count() or 1)):
            rasterio.shutil.copy(
                str(vrt_path), str(out_path), driver="COG",
                COMPRESS="ZSTD", LEVEL="1", PREDICTOR="2", BLOCKSIZE="512",
                OVERVIEW_RESAMPLING="NEAREST", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS",
            )  # fmt: skip
    except GDAL_ERRORS as exc:
        out_path.unlink(missing_ok=True)
        raise InvalidScene(f"pixel data cannot be read (truncated or corrupt?): {_gdal_reason(exc)}") from None
    finally:
        vrt_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class SceneMeasures:
    """What ingestion records of a scene's pixels."""

    footprint_wgs84: dict  # GeoJSON Polygon or MultiPolygon, EPSG:4326
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


def _gdal_reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
