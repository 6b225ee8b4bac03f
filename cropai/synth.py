"""Synthetic Sentinel-2 L2A scene sets: Crop AI's test and demo data.

For a lon/lat box and a date range this writes, deterministically from a seed:

- ``scenes/{scene_id}.tif``: one file per acquisition, 11 uint16 bands on a 10 m
  UTM grid: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12 (surface reflectance x 10000,
  nodata 0) and SCL (scene classification codes, 0 = no data); acquisition time,
  platform and cloud cover in the tags;
- ``labels.tif``: uint8 class ids (see :mod:`cropai.crops`, 0 = unlabelled) with a colour table;
- ``parcels.geojson``: every parcel polygon (EPSG:4326) with its class and area;
- ``manifest.json``: the request, the grid and the list of scenes.

Physical assumptions (each a simplification of the real thing):

- Landscape: the box is cut into rectangular parcels by recursive binary splits
  until the longer side is under about ``parcel_size_m`` (400 m gives parcels
  of mostly 3-10 ha, typical of European arable land), each shrunk by a 3-8 m margin (tracks, hedges) and skewed by
  moving its corners inward, so parcels are convex quadrilaterals, not all
  axis-aligned. Forest, water and built-up land come in clumps (thresholds of a
  smooth random field); other parcels are grassland or a crop drawn with
  shares loosely following EU arable statistics (wheat most common).
- Spectra: linear mixing of green canopy, dry canopy, flowers and soil, with
  per-class phenology (see :mod:`cropai.phenology`). Each field is sown up to
  ~12 days early or late, reaches a slightly different peak cover and has its own
  soil brightness; within a field, vigour varies smoothly by about 10 %.
- Acquisitions every ``revisit_days`` (5 days = Sentinel-2A and -2B together)
  at 10:30 local solar time; the two platforms alternate. No BRDF or terrain
  effects; the L2A processing-baseline offset (-1000 from 2022) is not applied.
- Atmosphere: a residual haze adds up to 0.02 reflectance, falling off with
  wavelength to the power -4 (Rayleigh-like).
- Clouds: a smooth random field thresholded so that the cloudy share of a scene
  matches a cover drawn from a Beta distribution with mean ``mean_cloud_cover``;
  optical thickness ramps up from the edges (thin cloud blends with the ground);
  shadows are the cloud field shifted by the sun-geometry offset and darken the
  ground by up to 70 %. SCL marks high/medium-probability cloud, thin cirrus,
  shadows, water, vegetation (NDVI > 0.4) and bare ground like the L2A processor.
- Swath edges: a share of acquisitions (``partial_swath_probability``) only
  covers part of the box; the rest is nodata, with a slanted edge like an orbit track.
- Sensor noise: Gaussian, 0.003 reflectance plus 1 % of the signal, per band and pixel.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from shapely.geometry import Polygon, mapping

from cropai import sentinel2
from cropai.crops import CLASSES, CLASSES_BY_ID, CLASSES_BY_NAME, colour_table
from cropai.errors import InvalidInput
from cropai.grid import BBox, Grid, grid_for_bbox
from cropai.phenology import MARGIN, PHENOLOGY, Phenology, endmembers
from cropai.sentinel2 import SCL

SCENE_BANDS: tuple[str, ...] = (*sentinel2.BANDS, sentinel2.SCL_BAND)
MAX_PIXELS = 25_000_000  # 50 km x 50 km at 10 m; beyond that, make several sets
# Crop shares among crop parcels, loosely after Eurostat arable-land statistics.
CROP_SHARES = {
    "winter_wheat": 0.24,
    "winter_barley": 0.12,
    "maize": 0.17,
    "rapeseed": 0.10,
    "sunflower": 0.08,
    "soybean": 0.07,
    "sugar_beet": 0.07,
    "potato": 0.06,
    "alfalfa": 0.09,
}
CLOUD_SPECTRUM = np.array([0.62, 0.61, 0.60, 0.60, 0.59, 0.58, 0.58, 0.57, 0.42, 0.30])
SOLAR_OVERPASS_HOURS = 10.5
FileFormat = Literal["cog", "gtiff"]


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: a lon/lat box (degrees), an inclusive date range and a seed."""

    bbox_wgs84: BBox
    start: date
    end: date
    seed: int = 0
    revisit_days: int = 5
    mean_cloud_cover: float = 0.3
    parcel_size_m: float = 400.0
    partial_swath_probability: float = 0.15
    file_format: FileFormat = "cog"
    phenology_shift_days: float = 0.0  # every crop sown this much later (a late spring, another region)

    def validate(self) -> None:
        if self.end < self.start:
            raise InvalidInput(f"end {self.end} is before start {self.start}")
        if self.revisit_days < 1:
            raise InvalidInput(f"revisit_days={self.revisit_days}: expected 1 or more days")
        if not 0.0 <= self.mean_cloud_cover < 1.0:
            raise InvalidInput(f"mean_cloud_cover={self.mean_cloud_cover}: expected 0 <= value < 1")
        if not 0.0 <= self.partial_swath_probability <= 1.0:
            raise InvalidInput(f"partial_swath_probability={self.partial_swath_probability}: expected 0..1")
        if self.parcel_size_m < 50:
            raise InvalidInput(f"parcel_size_m={self.parcel_size_m}: expected >= 50 m")
        if self.file_format not in ("cog", "gtiff"):
            raise InvalidInput(f"file_format={self.file_format!r}: expected 'cog' or 'gtiff'")


@dataclass(frozen=True)
class Parcel:
    id: int
    class_id: int
    polygon_utm: Polygon
    phenology: Phenology
    soil_brightness: float


@dataclass(frozen=True)
class SyntheticScene:
    scene_id: str
    path: Path
    acquired_at: datetime
    platform: str
    cloud_fraction: float  # share of valid pixels flagged cloud or cirrus
    nodata_fraction: float


@dataclass(frozen=True)
class SyntheticSet:
    root: Path
    grid: Grid
    scenes: list[SyntheticScene]
    labels_path: Path
    parcels_path: Path
    manifest_path: Path


def synthesize(
    spec: SynthSpec,
    out_dir: Path,
    on_scene: Callable[[SyntheticScene], None] | None = None,
) -> SyntheticSet:
    """Write the scene set of ``spec`` into ``out_dir`` and describe what was written."""
    spec.validate()
    grid = grid_for_bbox(spec.bbox_wgs84, sentinel2.RESOLUTION_M)
    if grid.width * grid.height > MAX_PIXELS:
        raise InvalidInput(
            f"bbox {spec.bbox_wgs84} is {grid.width} x {grid.height} pixels at 10 m; "
            f"expected at most {MAX_PIXELS:,} pixels: split it into smaller boxes"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scenes").mkdir(exist_ok=True)

    parcels = make_parcels(grid, spec)
    parcel_index = rasterize_parcels(parcels, grid)
    labels_path = out_dir / "labels.tif"
    write_labels(_label_lookup(parcels)[parcel_index], grid, labels_path)
    parcels_path = out_dir / "parcels.geojson"
    _write_text(parcels_path, json.dumps(parcels_geojson(parcels, grid)))

    scenes = _write_scenes(spec, grid, parcels, parcel_index, out_dir / "scenes", on_scene)
    manifest_path = out_dir / "manifest.json"
    _write_text(manifest_path, json.dumps(_manifest(spec, grid, scenes), indent=2))
    return SyntheticSet(out_dir, grid, scenes, labels_path, parcels_path, manifest_path)


def _write_scenes(
    spec: SynthSpec,
    grid: Grid,
    parcels: list[Parcel],
    parcel_index: npt.NDArray[np.int32],
    folder: Path,
    on_scene: Callable[[SyntheticScene], None] | None,
) -> list[SyntheticScene]:
    """Render and write every acquisition of the season over one landscape."""
    vigour = smooth_noise(np.random.default_rng([spec.seed, 1]), grid.shape, sigma_px=4.0)
    scenes = []
    for index, acquired_at in enumerate(acquisition_times(spec)):
        platform = "S2A" if index % 2 == 0 else "S2B"
        scene_id = f"{platform}_MSIL2A_{acquired_at:%Y%m%dT%H%M%S}_SYN_{_area_tag(spec)}"
        rng = np.random.default_rng([spec.seed, 100 + index])
        stack = render_scene(parcels, parcel_index, vigour, acquired_at, grid, rng, spec)
        path = folder / f"{scene_id}.tif"
        scene = SyntheticScene(
            scene_id=scene_id,
            path=path,
            acquired_at=acquired_at,
            platform=platform,
            cloud_fraction=sentinel2.cloud_fraction(stack[-1]),
            nodata_fraction=float(np.mean(stack[-1] == SCL.NO_DATA)),
        )
        write_scene(stack, grid, scene, path, spec.file_format)
        scenes.append(scene)
        if on_scene:
            on_scene(scene)
    return scenes


# --- landscape ------------------------------------------------------------------------


def make_parcels(grid: Grid, spec: SynthSpec) -> list[Parcel]:
    """Cut the grid's extent into skewed quadrilateral parcels and give each a class."""
    rng = np.random.default_rng([spec.seed, 0])
    minx, miny, maxx, maxy = grid.bounds
    zones = {name: smooth_noise(rng, (64, 64), sigma_px=4.0) for name in ("forest", "water", "built_up", "grassland")}
    crop_names = list(CROP_SHARES)
    crop_weights = np.array([CROP_SHARES[n] for n in crop_names])
    crop_weights /= crop_weights.sum()

    parcels: list[Parcel] = []
    for rect in _split(rng, (minx, miny, maxx, maxy), spec.parcel_size_m):
        polygon = _skewed_quadrilateral(rng, rect)
        if polygon is None:
            continue
        cx, cy = polygon.centroid.x, polygon.centroid.y
        zone_ix = (
            min(int((maxy - cy) / (maxy - miny) * 64), 63),
            min(int((cx - minx) / (maxx - minx) * 64), 63),
        )
        name = _zone_class(zones, zone_ix) or crop_names[rng.choice(len(crop_names), p=crop_weights)]
        sowing_shift = rng.normal(spec.phenology_shift_days, 6) if CLASSES_BY_NAME[name].is_crop else 0.0
        base = PHENOLOGY[name]
        phenology = base.shifted(sowing_shift)
        peak = base.peak_green * rng.uniform(0.88, 1.0)
        phenology = Phenology(**{**asdict(phenology), "peak_green": peak})
        parcels.append(
            Parcel(
                id=len(parcels) + 1,
                class_id=CLASSES_BY_NAME[name].id,
                polygon_utm=polygon,
                phenology=phenology,
                soil_brightness=float(rng.uniform(0.75, 1.25)),
            )
        )
    return parcels


def _zone_class(zones: dict[str, npt.NDArray[np.float32]], ix: tuple[int, int]) -> str | None:
    # Thresholds on a unit-variance field: roughly 10 % forest, 3 % water, 5 % built-up, 8 % grass.
    for name, threshold in (("water", 1.9), ("forest", 1.3), ("built_up", 1.65), ("grassland", 1.4)):
        if zones[name][ix] > threshold:
            return name
    return None


def _split(rng: np.random.Generator, rect: BBox, size_m: float) -> list[BBox]:
    """Recursive binary splits of ``rect`` until every piece's longer side is about ``size_m``."""
    pieces, stack = [], [rect]
    while stack:
        x0, y0, x1, y1 = stack.pop()
        width, height = x1 - x0, y1 - y0
        if max(width, height) <= size_m * rng.uniform(0.7, 1.5):
            pieces.append((x0, y0, x1, y1))
        elif width >= height:
            cut = x0 + width * rng.uniform(0.3, 0.7)
            stack += [(x0, y0, cut, y1), (cut, y0, x1, y1)]
        else:
            cut = y0 + height * rng.uniform(0.3, 0.7)
            stack += [(x0, y0, x1, cut), (x0, cut, x1, y1)]
    return pieces


def _skewed_quadrilateral(rng: np.random.Generator, rect: BBox) -> Polygon | None:
    margin = rng.uniform(3.0, 8.0)
    x0, y0, x1, y1 = rect[0] + margin, rect[1] + margin, rect[2] - margin, rect[3] - margin
    if x1 - x0 < 30 or y1 - y0 < 30:  # narrower than 3 pixels: leave it as margin
        return None
    dx, dy = 0.06 * (x1 - x0), 0.06 * (y1 - y0)
    corners = [
        (x0 + rng.uniform(0, dx), y0 + rng.uniform(0, dy)),
        (x1 - rng.uniform(0, dx), y0 + rng.uniform(0, dy)),
        (x1 - rng.uniform(0, dx), y1 - rng.uniform(0, dy)),
        (x0 + rng.uniform(0, dx), y1 - rng.uniform(0, dy)),
    ]
    return Polygon(corners)


def rasterize_parcels(parcels: list[Parcel], grid: Grid) -> npt.NDArray[np.int32]:
    """(y, x) int32 parcel ids on the grid; 0 between parcels."""
    shapes = ((mapping(p.polygon_utm), p.id) for p in parcels)
    ids: npt.NDArray[np.int32] = rasterize(
        shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32"
    )
    return ids


def _label_lookup(parcels: list[Parcel]) -> npt.NDArray[np.uint8]:
    """Class id by parcel id (index 0: between parcels, unlabelled)."""
    lookup = np.zeros(len(parcels) + 1, dtype=np.uint8)
    for parcel in parcels:
        lookup[parcel.id] = parcel.class_id
    return lookup


def parcels_geojson(parcels: list[Parcel], grid: Grid) -> dict[str, Any]:
    """A FeatureCollection of every parcel in EPSG:4326 (lon, lat), as RFC 7946 asks."""
    transformer = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)

    def to_wgs84(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))

    features = []
    for parcel in parcels:
        land_cover = CLASSES_BY_ID[parcel.class_id]
        features.append(
            {
                "type": "Feature",
                "id": parcel.id,
                "geometry": mapping(shapely.transform(parcel.polygon_utm, to_wgs84)),
                "properties": {
                    "parcel_id": parcel.id,
                    "class_id": land_cover.id,
                    "class_name": land_cover.name,
                    "is_crop": land_cover.is_crop,
                    "area_ha": round(parcel.polygon_utm.area / 10_000, 4),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# --- one acquisition --------------------------------------------------------------------


def acquisition_times(spec: SynthSpec) -> list[datetime]:
    """Overpass times (UTC) every ``revisit_days`` from ``start`` to ``end`` inclusive."""
    centre_lon = (spec.bbox_wgs84[0] + spec.bbox_wgs84[2]) / 2
    offset = timedelta(hours=SOLAR_OVERPASS_HOURS - centre_lon / 15)
    days = range(0, (spec.end - spec.start).days + 1, spec.revisit_days)
    midnight = datetime.combine(spec.start, time(), tzinfo=UTC)
    return [(midnight + timedelta(days=d) + offset).replace(microsecond=0) for d in days]


def render_scene(
    parcels: list[Parcel],
    parcel_index: npt.NDArray[np.int32],
    vigour: npt.NDArray[np.float32],
    acquired_at: datetime,
    grid: Grid,
    rng: np.random.Generator,
    spec: SynthSpec,
) -> npt.NDArray[np.uint16]:
    """The (band, y, x) uint16 stack of one acquisition: 10 reflectance bands and SCL."""
    doy = acquired_at.timetuple().tm_yday
    surface = _surface_reflectance(parcels, parcel_index, vigour, doy)
    wavelengths = np.array([sentinel2.CENTRAL_WAVELENGTH_NM[b] for b in sentinel2.BANDS])
    surface += rng.uniform(0.0, 0.02) * (wavelengths[0] / wavelengths)[:, None, None] ** 4

    cloud, shadow = _clouds(rng, grid.shape, spec.mean_cloud_cover)
    observed = surface * (1.0 - 0.7 * shadow * (1.0 - cloud))
    observed = (1.0 - cloud) * observed + cloud * CLOUD_SPECTRUM[:, None, None]
    observed += rng.normal(0.0, 1.0, observed.shape).astype(np.float32) * (0.003 + 0.01 * observed)

    digital = np.clip(np.rint(observed * sentinel2.REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    scl = _scene_classification(observed, cloud, shadow)
    valid = _swath_mask(rng, grid.shape, spec.partial_swath_probability)
    digital[:, ~valid] = sentinel2.NODATA
    scl[~valid] = SCL.NO_DATA
    return np.concatenate([digital, scl[None]], axis=0)


def _surface_reflectance(
    parcels: list[Parcel], parcel_index: npt.NDArray[np.int32], vigour: npt.NDArray[np.float32], doy: int
) -> npt.NDArray[np.float32]:
    """(band, y, x) float32 reflectance of the ground on day ``doy``."""
    n = len(parcels) + 1
    fractions = np.zeros((n, 3), dtype=np.float32)  # green, dry, flower
    spectra = np.zeros((n, 4, len(sentinel2.BANDS)), dtype=np.float32)
    fractions[0] = MARGIN.fractions(doy)
    spectra[0] = endmembers(MARGIN)
    for parcel in parcels:
        fractions[parcel.id] = parcel.phenology.fractions(doy)
        spectra[parcel.id] = endmembers(parcel.phenology, parcel.soil_brightness)

    green = np.clip(fractions[parcel_index, 0] * (1.0 + 0.1 * vigour), 0.0, 1.0)
    dry = fractions[parcel_index, 1]
    flower = fractions[parcel_index, 2]
    background = np.clip(1.0 - green - dry - flower, 0.0, 1.0)
    surface = np.empty((len(sentinel2.BANDS), *parcel_index.shape), dtype=np.float32)
    for band in range(len(sentinel2.BANDS)):
        members = spectra[:, :, band]
        surface[band] = (
            green * members[parcel_index, 0]
            + dry * members[parcel_index, 1]
            + flower * members[parcel_index, 2]
            + background * members[parcel_index, 3]
        )
    return surface


def _clouds(
    rng: np.random.Generator, shape: tuple[int, int], mean_cover: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cloud opacity and shadow strength, both (y, x) in 0..1."""
    if mean_cover <= 0:
        zeros = np.zeros(shape, dtype=np.float32)
        return zeros, zeros
    # Beta(a, b) with mean a / (a + b) = mean_cover; a < 1 makes clear days common.
    a = 0.6
    cover = rng.beta(a, a * (1.0 - mean_cover) / mean_cover)
    sigma = rng.uniform(0.04, 0.12) * max(shape)
    field_ = smooth_noise(rng, shape, sigma_px=sigma)
    threshold = np.quantile(field_, 1.0 - cover) if cover > 0.001 else np.inf
    cloud = np.clip((field_ - threshold) / 0.6, 0.0, 1.0).astype(np.float32)
    # Morning sun in the south-east casts shadows to the north-west of each cloud.
    dy, dx = max(1, int(0.03 * shape[0])), max(1, int(0.03 * shape[1]))
    shadow = np.zeros_like(cloud)
    shadow[: shape[0] - dy, : shape[1] - dx] = cloud[dy:, dx:]
    return cloud, shadow


def _scene_classification(
    observed: npt.NDArray[np.floating], cloud: npt.NDArray[np.float32], shadow: npt.NDArray[np.float32]
) -> npt.NDArray[np.uint16]:
    """The (y, x) SCL codes the L2A processor would give these pixels."""
    red, nir = observed[2], observed[6]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.full(cloud.shape, SCL.NOT_VEGETATED, dtype=np.uint16)
    scl[ndvi > 0.4] = SCL.VEGETATION
    scl[(nir < 0.06) & (ndvi < 0.1)] = SCL.WATER
    scl[(shadow > 0.3) & (cloud < 0.12)] = SCL.CLOUD_SHADOW
    scl[(cloud >= 0.12) & (cloud < 0.35)] = SCL.THIN_CIRRUS
    scl[(cloud >= 0.35) & (cloud < 0.65)] = SCL.CLOUD_MEDIUM_PROBABILITY
    scl[cloud >= 0.65] = SCL.CLOUD_HIGH_PROBABILITY
    return scl


def _swath_mask(rng: np.random.Generator, shape: tuple[int, int], probability: float) -> npt.NDArray[np.bool_]:
    """True where the acquisition has data; sometimes a slanted orbit edge cuts one side off."""
    height, width = shape
    if rng.uniform() >= probability:
        return np.ones(shape, dtype=bool)
    kept = rng.uniform(0.4, 0.85)
    slope = math.tan(math.radians(rng.uniform(-12, 12)))
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    edge = kept * width + slope * (rows - height / 2)
    return cols < edge if rng.uniform() < 0.5 else cols >= width - edge


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> npt.NDArray[np.float32]:
    """White noise blurred by a Gaussian of ``sigma_px`` pixels (via FFT), rescaled to mean 0, std 1."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    kernel = np.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    smooth = np.fft.irfft2(np.fft.rfft2(white) * kernel, s=shape)
    return ((smooth - float(smooth.mean())) / max(float(smooth.std()), 1e-12)).astype(np.float32)


# --- files ------------------------------------------------------------------------------


def _profile(grid: Grid, count: int, dtype: str, file_format: FileFormat) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": 0,
    }
    if file_format == "cog":
        profile.update(
            driver="COG",
            compress="DEFLATE",
            predictor=2,
            blocksize=512,
            overview_resampling="NEAREST",
            bigtiff="IF_SAFER",
        )
    else:  # a plain striped GeoTIFF, as many providers and older tools deliver
        profile.update(driver="GTiff", tiled=False, compress="NONE")
    return profile


def write_scene(
    stack: npt.NDArray[np.uint16], grid: Grid, scene: SyntheticScene, path: Path, file_format: FileFormat
) -> None:
    temp = path.with_name(f".tmp-{path.name}")
    with rasterio.open(temp, "w", **_profile(grid, len(SCENE_BANDS), "uint16", file_format)) as dst:
        dst.write(stack)
        dst.descriptions = SCENE_BANDS
        dst.update_tags(
            SCENE_ID=scene.scene_id,
            ACQUISITION_DATETIME=scene.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            SPACECRAFT_NAME=f"Sentinel-2{scene.platform[-1]}",
            PROCESSING_LEVEL="Level-2A",
            BOA_QUANTIFICATION_VALUE=str(sentinel2.REFLECTANCE_SCALE),
            CLOUDY_PIXEL_PERCENTAGE=f"{100 * scene.cloud_fraction:.2f}",
            SYNTHETIC="true",
        )
        for band_no, name in enumerate(sentinel2.BANDS, start=1):
            dst.update_tags(band_no, WAVELENGTH_NM=str(sentinel2.CENTRAL_WAVELENGTH_NM[name]))
    os.replace(temp, path)


def write_labels(labels: npt.NDArray[np.uint8], grid: Grid, path: Path) -> None:
    temp = path.with_name(f".tmp-{path.name}")
    with rasterio.open(temp, "w", **_profile(grid, 1, "uint8", "cog")) as dst:
        dst.write(labels, 1)
        dst.write_colormap(1, colour_table())
        dst.descriptions = ("class_id",)
        dst.update_tags(CLASSES=json.dumps({c.id: c.name for c in CLASSES}))
    os.replace(temp, path)


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(f".tmp-{path.name}")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def _area_tag(spec: SynthSpec) -> str:
    key = json.dumps([list(spec.bbox_wgs84), spec.seed])
    return hashlib.sha1(key.encode()).hexdigest()[:8].upper()


def _manifest(spec: SynthSpec, grid: Grid, scenes: list[SyntheticScene]) -> dict[str, Any]:
    return {
        "generator": "cropai.synth",
        "spec": {**asdict(spec), "start": spec.start.isoformat(), "end": spec.end.isoformat()},
        "grid": {**asdict(grid), "transform": list(grid.transform)[:6]},
        "bands": list(SCENE_BANDS),
        "classes": [asdict(c) for c in CLASSES],
        "labels": "labels.tif",
        "parcels": "parcels.geojson",
        "scenes": [
            {
                "scene_id": s.scene_id,
                "path": s.path.relative_to(s.path.parent.parent).as_posix(),
                "acquired_at": s.acquired_at.isoformat(),
                "platform": s.platform,
                "cloud_fraction": round(s.cloud_fraction, 4),
                "nodata_fraction": round(s.nodata_fraction, 4),
            }
            for s in scenes
        ],
    }
