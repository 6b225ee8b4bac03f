"""Planning an analysis and building each tile's model input.

A plan is everything the batch tasks need, as references: the target grid (the
AOI's UTM zone at 10 m, snapped so that reruns give the same pixels), the tiles
and batches, the scenes to read (object keys, times and bounds in the grid's CRS),
the time bins of the model's contract and where the prediction Zarr lives.
Pixels never travel in a plan: each batch reads its windows from the scene COGs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import bounds as window_bounds
from rasterio.windows import transform as window_transform
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cropai.composite import TimeBin, composite, fill_gaps, monthly_bins
from cropai.db import Analysis, Scene
from cropai.errors import InvalidInput
from cropai.grid import BBox, Grid, grid_for_bbox
from cropai.raster import read_window
from cropai.sentinel2 import RESOLUTION_M
from cropai.storage import ObjectStore
from cropai.tiling import Batch, Tile, TilePlan, plan_tiles


class NoUsableScenes(InvalidInput):
    """The catalogue holds no scene for the AOI and window (within the cloud limit)."""


@dataclass(frozen=True)
class SceneRef:
    """A catalogued scene as a batch needs it: where, when, and its bounds in the grid's CRS."""

    object_key: str
    acquired_at: datetime
    bounds: BBox


@dataclass(frozen=True)
class AnalysisPlan:
    analysis_id: str
    model: str  # resolved name@version
    grid: Grid
    tiles: TilePlan
    time_bins: tuple[TimeBin, ...]
    band_means: tuple[float, ...]
    scenes: tuple[SceneRef, ...]
    aoi_geojson: dict

    @property
    def prefix(self) -> str:
        return f"analyses/{self.analysis_id}"

    @property
    def zarr_prefix(self) -> str:
        return f"{self.prefix}/pred.zarr"

    def batch_marker(self, batch_index: int) -> str:
        """Object written when a batch is done; keyed by (analysis, model version, batch)."""
        return f"{self.prefix}/batches/{self.model.replace('@', '-')}/{batch_index:05d}.json"


def season_bins(months: Sequence[int], start: date, end: date) -> tuple[TimeBin, ...]:
    """The model's monthly bins in the window's year, clipped to the window; a month the
    window misses entirely is an error naming it (the model needs every bin)."""
    bins = []
    for time_bin in monthly_bins(start.year, months):
        clipped = TimeBin(max(time_bin.start, start), min(time_bin.end, end))
        if clipped.start > clipped.end:
            raise InvalidInput(
                f"date window {start} to {end} misses {time_bin.start:%B %Y}: the model composites months "
                f"{list(months)} of one season; widen the window to cover them"
            )
        bins.append(clipped)
    return tuple(bins)


def make_plan(
    analysis_id: uuid.UUID | str,
    aoi_geojson: dict,
    start: date,
    end: date,
    model: str,
    months: Sequence[int],
    band_means: Sequence[float],
    tile_size: int,
    overlap: int,
    scenes: Sequence[tuple[str, datetime, dict]],
    batch_pixels: int | None = None,
) -> AnalysisPlan:
    """Plan an analysis over the AOI (GeoJSON geometry, EPSG:4326) from candidate scenes
    given as (object key, acquisition time, footprint GeoJSON in EPSG:4326)."""
    aoi = shapely.geometry.shape(aoi_geojson)
    bins = season_bins(months, start, end)
    usable = [
        (key, moment, fp)
        for key, moment, fp in scenes
        if shapely.geometry.shape(fp).intersects(aoi) and any(b.contains(moment) for b in bins)
    ]
    if not usable:
        raise NoUsableScenes(
            f"no usable scenes for the AOI (bbox {tuple(round(v, 5) for v in aoi.bounds)}) between {start} and "
            f"{end}: ingest scenes that cover it in that window (or relax the cloud limit)"
        )
    grid = grid_for_bbox(aoi.bounds, RESOLUTION_M)
    mask = aoi_mask(aoi_geojson, grid)
    kwargs = {"batch_pixels": batch_pixels} if batch_pixels else {}
    tiles = plan_tiles(grid, tile_size, overlap, aoi_mask=mask, **kwargs)
    refs = tuple(
        SceneRef(key, moment, tuple(transform_bounds("EPSG:4326", grid.crs, *shapely.geometry.shape(fp).bounds)))
        for key, moment, fp in sorted(usable, key=lambda s: (s[1], s[0]))
    )
    return AnalysisPlan(str(analysis_id), model, grid, tiles, bins, tuple(band_means), refs, aoi_geojson)


def plan_from_catalogue(
    sessions: sessionmaker[Session], analysis_id: uuid.UUID | str, model: str, contract: dict[str, Any]
) -> AnalysisPlan:
    """The plan of a stored Analysis request for a resolved model version (``name@version``
    and its contract): candidate scenes by bbox and cloud limit, latest version of each."""
    with sessions() as session:
        analysis = session.get_one(Analysis, uuid.UUID(str(analysis_id)))
        query = select(Scene).where(
            Scene.maxx >= analysis.minx,
            Scene.minx <= analysis.maxx,
            Scene.maxy >= analysis.miny,
            Scene.miny <= analysis.maxy,
        )
        max_cloud = analysis.options.get("max_cloud_fraction")
        if max_cloud is not None:
            query = query.where(Scene.cloud_fraction.is_(None) | (Scene.cloud_fraction <= max_cloud))
        latest: dict[str, Scene] = {}
        for scene in session.scalars(query):
            if scene.scene_id not in latest or scene.version > latest[scene.scene_id].version:
                latest[scene.scene_id] = scene  # a reprocessed scene replaces its older versions
    return make_plan(
        analysis_id,
        analysis.aoi_geojson,
        analysis.start_date,
        analysis.end_date,
        model,
        contract["months"],
        contract["band_means"],
        contract["tile_size"],
        contract["overlap"],
        [(s.object_key, s.acquired_at, s.footprint_geojson) for s in latest.values()],
        batch_pixels=analysis.options.get("batch_pixels"),
    )


def aoi_mask(aoi_geojson: dict, grid: Grid) -> np.ndarray:
    """(y, x) True inside the AOI (pixel centres)."""
    geometry = transform_geom("EPSG:4326", grid.crs, aoi_geojson)
    return rasterize([(geometry, 1)], out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8") > 0


@dataclass(frozen=True)
class BatchInput:
    """A batch's model input over its padded window: ``cube`` (time, band, y, x)
    reflectance without gaps and ``seen`` (y, x), pixels seen clear at least once.
    ``row, col`` is the window's offset in the grid."""

    cube: np.ndarray
    seen: np.ndarray
    row: int
    col: int

    def tile(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """The tile's padded cube and its core's ``seen`` mask."""
        top, left = tile.row - tile.halo - self.row, tile.col - tile.halo - self.col
        cube = self.cube[:, :, top : top + tile.size, left : left + tile.size]
        core = self.seen[
            top + tile.halo : top + tile.halo + tile.height, left + tile.halo : left + tile.halo + tile.width
        ]
        return cube, core


def batch_input(plan: AnalysisPlan, batch: Batch, store: ObjectStore) -> BatchInput | None:
    """Read every scene that touches the batch once, over the batch's padded window, and
    composite it per time bin; None when no scene covers the batch."""
    window = batch.padded
    transform = window_transform(window, plan.grid.transform)
    left, bottom, right, top = window_bounds(window, plan.grid.transform)
    touching = [
        s
        for s in plan.scenes
        if s.bounds[0] < right and s.bounds[2] > left and s.bounds[1] < top and s.bounds[3] > bottom
    ]
    if not touching:
        return None
    width, height = int(window.width), int(window.height)

    def loader(scene: SceneRef):
        return lambda: read_window(store, scene.object_key, plan.grid.crs, transform, width, height)

    try:
        cube = composite([(scene.acquired_at, loader(scene)) for scene in touching], plan.time_bins)
    except ValueError:  # no scene of the batch falls in a time bin
        return None
    seen = ~np.isnan(cube).all(axis=(0, 1))
    return BatchInput(fill_gaps(cube, plan.band_means), seen, int(window.row_off), int(window.col_off))
