"""Small crop-map COGs for the tile tests: two classes split down the middle of an AOI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from shapely.geometry import box, mapping

from cropai.analysis import aoi_mask
from cropai.cropmap import write_map
from cropai.crops import CLASSES_BY_NAME, SYNTHETIC_LEGEND
from cropai.grid import grid_for_bbox
from cropai.webtiles import TileId

AREA = (1.600, 48.200, 1.640, 48.222)
AOI = mapping(box(1.606, 48.204, 1.634, 48.218))
MAIZE = CLASSES_BY_NAME["maize"]
WHEAT = CLASSES_BY_NAME["winter_wheat"]


def tile_of(lon: float, lat: float, z: int) -> TileId:
    """The slippy-map formula, written independently of cropai.webtiles."""
    n = 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return TileId(z, int((lon + 180) / 360 * n), int(y))


# The tile at zoom 14 that holds the AOI's south-west corner: it shows AOI and outside both.
CORNER = tile_of(1.606, 48.204, 14)
# A tile over Paris, 80 km away from the map.
AWAY = tile_of(2.35, 48.85, 14)


def write_two_class_map(path: Path) -> Path:
    """Maize in the west half of the AOI, winter wheat in the east, 0 outside the AOI; 10 m, UTM."""
    grid = grid_for_bbox(AREA, 10.0)
    labels = np.where(np.arange(grid.width) < grid.width // 2, MAIZE.id, WHEAT.id).astype(np.uint8)
    labels = np.broadcast_to(labels, grid.shape).copy()
    labels[~aoi_mask(AOI, grid)] = 0
    write_map(
        labels,
        np.full(grid.shape, 200, np.uint8),
        grid,
        path,
        analysis_id="test",
        model="cropnet@1.0.0",
        legend=SYNTHETIC_LEGEND,
    )
    return path
