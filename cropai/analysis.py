"""Planning an analysis and building each tile's model input.

A plan is everything the batch tasks need, as references: the target grid (the
AOI's UTM zone at 10 m, snapped so that reruns give the same pixels), the tiles
and batches, the scenes to read (object keys, times and bounds in the grid's CRS),
the time bins of the model's contract and where the prediction Zarr lives.
Pixels never travel in a plan: each batch reads its windows from the scene COGs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely
from rasterio.features import rasterize
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import AnalysisRequest, PinnedScene, catalogued_scenes
from cropai.composite import Composite, Median, TimeBin, composite, fill_gaps
from cropai.crops import SYNTHETIC_LEGEND
from cropai.db import ModelVersion, Scene
from cropai.errors import InvalidInput
from cropai.grid import BBox, Grid, grid_for_bbox
from cropai.input_check import TrainingInputStatistics
from cropai.legend import Legend
from cropai.model_scope import TrainingScope, scope_warnings
from cropai.raster import read_window
from cropai.season import Season
from cropai.sentinel2 import RESOLUTION_M
from cropai.storage import ObjectStore
from cropai.tiling import DEFAULT_BATCH_PIXELS, Batch, Tile, TilePlan, plan_tiles


class NoUsableScenes(InvalidInput):
    """The catalogue holds no scene for the AOI and window (within the cloud limit)."""


@dataclass(frozen=True)
class ModelInputs:
    """What planning takes of a model version: its name and the parts of its input contract
    (``models.contract.ModelContract``) that shape the plan."""

    name: str  # resolved name@version
    season: Season  # the time bins the model composites
    band_means: tuple[float, ...]  # reflectance 0..1 per band: what a never-seen pixel gets
    tile_size: int  # px, halo included
    overlap: int  # px of context on each side of a tile's core: the model's receptive radius, or more
    legend: Legend = SYNTHETIC_LEGEND  # the classes its outputs stand for
    scope: TrainingScope | None = None  # what it learnt from: the plan's warnings come from it
    input_statistics: TrainingInputStatistics | None = None  # its training inputs, per bin and band

    @classmethod
    def of_version(cls, version: ModelVersion) -> ModelInputs:
        contract = version.contract
        return cls(
            f"{version.name}@{version.version}",
            Season.of_contract(contract),
            tuple(contract["band_means"]),
            contract["tile_size"],
            contract["overlap"],
            Legend.of_contract(contract),
            TrainingScope.of_record(contract, version.training or {}),
            _input_statistics(version.training or {}),
        )


def _input_statistics(training: dict[str, Any]) -> TrainingInputStatistics | None:
    """Versions registered before training inputs were summarised have none: their inputs go unchecked."""
    record = training.get("input_statistics")
    return TrainingInputStatistics.from_record(record) if record else None


class CandidateScene(NamedTuple):
    """A catalogued scene that may serve an analysis, before its footprint and date are checked."""

    object_key: str
    acquired_at: datetime
    footprint_geojson: dict[str, Any]  # EPSG:4326
    scene_id: str = ""
    version: int = 0
    content_hash: str = ""


@dataclass(frozen=True)
class SceneRef:
    """A catalogued scene as a batch needs it: where, when, and its bounds in the grid's CRS;
    with the exact version it is (id, version, content hash), which the analysis records."""

    object_key: str
    acquired_at: datetime
    bounds: BBox
    scene_id: str = ""
    version: int = 0
    content_hash: str = ""

    def as_input(self) -> dict[str, Any]:
        """How the analysis records it: enough to find the very pixels it read."""
        return {
            "scene_id": self.scene_id,
            "version": self.version,
            "content_hash": self.content_hash,
            "acquired_at": self.acquired_at.isoformat(),
            "object_key": self.object_key,
        }


@dataclass(frozen=True)
class AnalysisPlan:
    request: AnalysisRequest  # the analysis as its row was read, once, for this run
    model: str  # resolved name@version
    grid: Grid
    tiles: TilePlan
    time_bins: tuple[TimeBin, ...]
    band_means: tuple[float, ...]
    scenes: tuple[SceneRef, ...]
    legend: Legend = SYNTHETIC_LEGEND
    warnings: tuple[str, ...] = ()  # what a reader of the result should know before trusting it
    input_statistics: TrainingInputStatistics | None = None  # the model's training inputs, to check ours against

    @property
    def analysis_id(self) -> uuid.UUID:
        return self.request.analysis_id

    @property
    def prefix(self) -> str:
        return f"analyses/{self.analysis_id}"

    @property
    def zarr_prefix(self) -> str:
        return f"{self.prefix}/pred.zarr"

    @property
    def input_scenes(self) -> list[dict[str, Any]]:
        """The exact scene versions this plan reads, in time order."""
        return [scene.as_input() for scene in self.scenes]

    def batch_marker(self, batch_index: int) -> str:
        """Object written when a batch is done; keyed by (analysis, model version, the batch's
        window), so that a run whose batches are cut otherwise (other worker memory) reuses none."""
        window = self.tiles.batches[batch_index].padded
        place = f"{window.row_off}_{window.col_off}_{window.height}x{window.width}"
        return f"{self.prefix}/batches/{self.model.replace('@', '-')}/{place}.json"


def make_plan(
    request: AnalysisRequest,
    model: ModelInputs,
    scenes: Sequence[CandidateScene],
    worker_memory: int | None = None,
) -> AnalysisPlan:
    """Plan an analysis over the request's AOI from the candidate scenes: the AOI's grid, its tiles
    and batches, and the scenes that meet the AOI within the model's time bins. Batches are as
    large as the request asks (about 1 Mpix by default) and as ``worker_memory`` (bytes) allows."""
    bins = model.season.bins_in(request.start, request.end)
    usable = usable_scenes(request.aoi_geojson, bins, scenes, (request.start, request.end))
    grid = aoi_grid(request.aoi_geojson)
    mask = aoi_mask(request.aoi_geojson, grid)
    batch_pixels = request.batch_pixels or DEFAULT_BATCH_PIXELS
    if worker_memory:
        deepest = max(sum(b.contains(s.acquired_at) for s in usable) for b in bins)
        batch_pixels = min(batch_pixels, batch_pixels_within(worker_memory, len(bins), len(model.band_means), deepest))
    tiles = plan_tiles(grid, model.tile_size, model.overlap, aoi_mask=mask, batch_pixels=batch_pixels)
    warnings = scope_warnings(model.scope, request.bounds, (request.start, request.end)) if model.scope else ()
    return AnalysisPlan(
        request,
        model.name,
        grid,
        tiles,
        bins,
        model.band_means,
        scene_refs(grid, usable),
        model.legend,
        warnings,
        model.input_statistics,
    )


def usable_scenes(
    aoi_geojson: dict[str, Any],
    bins: Sequence[TimeBin],
    scenes: Sequence[CandidateScene],
    window: tuple[date, date],
) -> list[CandidateScene]:
    """The scenes whose footprint meets the AOI (EPSG:4326 GeoJSON) and that fall in a time bin;
    none is an error that names the AOI and the date window."""
    aoi = shapely.geometry.shape(aoi_geojson)
    usable = [
        scene
        for scene in scenes
        if shapely.geometry.shape(scene.footprint_geojson).intersects(aoi)
        and any(b.contains(scene.acquired_at) for b in bins)
    ]
    if not usable:
        raise NoUsableScenes(
            f"no usable scenes for the AOI (bbox {tuple(round(v, 5) for v in aoi.bounds)}) between "
            f"{window[0]} and {window[1]}: ingest scenes that cover it in that window (or relax the cloud limit)"
        )
    return usable


def scene_refs(grid: Grid, scenes: Sequence[CandidateScene]) -> tuple[SceneRef, ...]:
    """The scenes as reads on ``grid`` need them, in time order."""
    return tuple(
        SceneRef(
            scene.object_key,
            scene.acquired_at,
            _bounds_in(grid, scene.footprint_geojson),
            scene.scene_id,
            scene.version,
            scene.content_hash,
        )
        for scene in sorted(scenes, key=lambda s: (s.acquired_at, s.object_key))
    )


def _bounds_in(grid: Grid, footprint_geojson: dict[str, Any]) -> BBox:
    """A footprint's bounds (EPSG:4326) in the grid's CRS."""
    minx, miny, maxx, maxy = transform_bounds("EPSG:4326", grid.crs, *shapely.geometry.shape(footprint_geojson).bounds)
    return float(minx), float(miny), float(maxx), float(maxy)


def plan_from_catalogue(
    sessions: sessionmaker[Session], request: AnalysisRequest, model: ModelInputs, worker_memory: int | None = None
) -> AnalysisPlan:
    """The plan of a stored analysis request for a resolved model version, from the catalogue's scenes:
    the exact versions a rerun pins, else the latest version of each scene."""
    if request.pinned_scenes:
        scenes = pinned_scenes(sessions, request.pinned_scenes)
    else:
        scenes = candidate_scenes(sessions, request.bounds, request.max_cloud_fraction)
    return make_plan(request, model, scenes, worker_memory)


def pinned_scenes(sessions: sessionmaker[Session], pins: Sequence[PinnedScene]) -> list[CandidateScene]:
    """The pinned scene versions, found by content hash however many versions came since;
    :class:`cropai.analysis_records.MissingInputs` naming those no longer catalogued."""
    found = catalogued_scenes(sessions, pins)
    return [
        CandidateScene(s.object_key, s.acquired_at, s.footprint_geojson, s.scene_id, s.version, s.content_hash)
        for s in (found[pin.content_hash] for pin in pins)
    ]


def candidate_scenes(
    sessions: sessionmaker[Session], bounds: BBox, max_cloud_fraction: float | None = None
) -> list[CandidateScene]:
    """Catalogued scenes whose bbox meets ``bounds`` (EPSG:4326), within the cloud limit (0..1):
    the latest version of each."""
    minx, miny, maxx, maxy = bounds
    query = select(Scene).where(Scene.maxx >= minx, Scene.minx <= maxx, Scene.maxy >= miny, Scene.miny <= maxy)
    if max_cloud_fraction is not None:
        query = query.where(Scene.cloud_fraction.is_(None) | (Scene.cloud_fraction <= max_cloud_fraction))
    latest: dict[str, Scene] = {}
    with sessions() as session:
        for scene in session.scalars(query):
            if scene.scene_id not in latest or scene.version > latest[scene.scene_id].version:
                latest[scene.scene_id] = scene  # a reprocessed scene replaces its older versions
        return [
            CandidateScene(s.object_key, s.acquired_at, s.footprint_geojson, s.scene_id, s.version, s.content_hash)
            for s in latest.values()
        ]


def aoi_grid(aoi_geojson: dict[str, Any]) -> Grid:
    """The 10 m grid of an analysis of the AOI (GeoJSON, EPSG:4326): its UTM zone, its bounding
    box snapped to whole pixels, so that reruns give the same pixels."""
    minx, miny, maxx, maxy = shapely.geometry.shape(aoi_geojson).bounds
    return grid_for_bbox((float(minx), float(miny), float(maxx), float(maxy)), RESOLUTION_M)


def aoi_mask(aoi_geojson: dict[str, Any], grid: Grid) -> npt.NDArray[np.bool_]:
    """(y, x) True inside the AOI (pixel centres)."""
    geometry = transform_geom("EPSG:4326", grid.crs, aoi_geojson)
    burnt = rasterize([(geometry, 1)], out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8")
    return np.asarray(burnt) > 0


# What a worker holds for a batch, measured with bench/pipeline.py (peak RSS of its workers):
# the worker itself (Python, torch, GDAL, Dask, the model loaded: 320 MB) before its first batch,
# the model's pass over a tile or two, and per pixel of the batch's block the composite (float32
# per bin and band, a clear count per bin) and the observations of the deepest bin (uint16 per
# band and a clear flag, per scene) with the median's temporaries (a few per band). Batches use
# at most BATCH_MEMORY_SHARE of a worker's limit: Dask pauses a worker at 80 % and restarts it
# at 95 %.
WORKER_BYTES = 350 * 2**20
MODEL_PASS_BYTES = 100 * 2**20
BATCH_MEMORY_SHARE = 0.7
MIN_BATCH_PIXELS = 65_536


def batch_pixels_within(memory_bytes: int, bins: int, bands: int, scenes_per_bin: int) -> int:
    """The core pixels of a batch that a worker with ``memory_bytes`` can composite and predict
    (at least one tile's worth, however small the worker)."""
    per_pixel = bins * (bands * 4 + 1) + scenes_per_bin * (bands * 2 + 1) + bands * 12
    room = memory_bytes * BATCH_MEMORY_SHARE - WORKER_BYTES - MODEL_PASS_BYTES
    return max(MIN_BATCH_PIXELS, int(room // per_pixel))


@dataclass(frozen=True)
class BatchInput:
    """A batch's composite over its padded window: ``cube`` (time, band, y, x) reflectance,
    NaN where a bin saw a pixel never clear, and ``clear_counts`` (time, y, x) uint8, the clear
    observations behind each value. ``row, col`` is the window's offset in the grid. Gaps are
    filled tile by tile as the model asks for them, so the batch never holds a second cube."""

    cube: np.ndarray
    clear_counts: np.ndarray
    row: int
    col: int
    band_means: tuple[float, ...]

    def tile(self, tile: Tile) -> np.ndarray:
        """The model's input for a tile, ``(time, band, input height, input width)`` without gaps."""
        top, left = tile.input_row - self.row, tile.input_col - self.col
        window = self.cube[:, :, top : top + tile.input_height, left : left + tile.input_width]
        return fill_gaps(window, self.band_means)

    def core_clear_counts(self, tile: Tile) -> np.ndarray:
        """``(time, height, width)``: the clear observations behind each value of the tile's core."""
        return self.clear_counts[:, *self._core(tile)]

    def core_observed(self, tile: Tile) -> np.ndarray:
        """The tile core's composite as observed, ``(time, band, height, width)`` with NaN
        where a value was gap-filled."""
        return self.cube[:, :, *self._core(tile)]

    def _core(self, tile: Tile) -> tuple[slice, slice]:
        top, left = tile.row - self.row, tile.col - self.col
        return slice(top, top + tile.height), slice(left, left + tile.width)


def batch_input(
    plan: AnalysisPlan, batch: Batch, store: ObjectStore, median: Median | None = None
) -> BatchInput | None:
    """Read every scene that touches the batch once, over the batch's padded window, and
    composite it per time bin (with ``median`` instead of the CPU's clear median when given);
    None when no scene covers the batch."""
    window = batch.padded
    made = season_composite(store, plan.scenes, plan.time_bins, plan.grid, window, median)
    if made is None:
        return None
    return BatchInput(made.cube, made.clear_counts, int(window.row_off), int(window.col_off), plan.band_means)


def season_composite(
    store: ObjectStore,
    scenes: Sequence[SceneRef],
    bins: Sequence[TimeBin],
    grid: Grid,
    window: Window,
    median: Median | None = None,
) -> Composite | None:
    """The composite of a window of the grid (``cube`` (time, band, y, x) reflectance 0..1, NaN
    where a bin saw a pixel never clear, and its clear counts): every scene that touches the window
    is read once. None when no scene touches it within the bins. Analyses and training build model
    inputs with this."""
    transform = window_transform(window, grid.transform)
    left, bottom, right, top = window_bounds(window, grid.transform)
    touching = [
        s for s in scenes if s.bounds[0] < right and s.bounds[2] > left and s.bounds[1] < top and s.bounds[3] > bottom
    ]
    if not touching:
        return None
    width, height = int(window.width), int(window.height)

    def loader(scene: SceneRef) -> Callable[[], npt.NDArray[np.uint16]]:
        return lambda: read_window(store, scene.object_key, grid.crs, transform, width, height)

    try:
        return composite([(scene.acquired_at, loader(scene)) for scene in touching], bins, median=median)
    except ValueError:  # no scene of the window falls in a time bin
        return None
