"""Web map tiles of a crop map: how long a tile takes the first time (rendered from the
COG: open, read at the tile's resolution, reproject, colour, PNG) and once cached.

The map is a 20 km x 20 km crop map at 10 m (2000 x 2000 px, 400 km², with overviews),
written like an analysis writes it, in a folder store. For each zoom from 10 (the whole
map in one or two tiles) to 17 (about 1 m per tile pixel), every tile over the map's
middle 2 km x 2 km (all of them up to zoom 14) is rendered cold, then fetched again from
the cache. Prints per zoom the tiles, p50 / p95 ms cold, p50 ms cached and the rate.

    .venv/bin/python bench/tiles.py
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cropai.cropmap import write_map  # noqa: E402
from cropai.crops import CLASSES, SYNTHETIC_LEGEND  # noqa: E402
from cropai.grid import grid_for_bbox  # noqa: E402
from cropai.storage import LocalStore  # noqa: E402
from cropai.webtiles import TileId, map_tile  # noqa: E402
from testkit.crop_maps import tile_of  # noqa: E402

# About 20 km x 20 km in the Beauce.
BBOX = (1.45, 48.10, 1.72, 48.28)
CENTRE = ((BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2)
HALF_WINDOW_DEG = (0.0135, 0.009)  # ~1 km either side of the centre


def parcel_map(shape: tuple[int, int], seed: int = 3) -> np.ndarray:
    """Blocky 'fields' of 40-120 px with random classes: a crop map's texture."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.uint8)
    y = 0
    while y < shape[0]:
        height, x = int(rng.integers(40, 120)), 0
        while x < shape[1]:
            width = int(rng.integers(40, 120))
            labels[y : y + height, x : x + width] = rng.choice([c.id for c in CLASSES])
            x += width
        y += height
    return labels


def tiles_at(z: int) -> list[TileId]:
    lon, lat = CENTRE
    dlon, dlat = HALF_WINDOW_DEG
    bounds = BBOX if z <= 14 else (lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    first, last = tile_of(bounds[0], bounds[3], z), tile_of(bounds[2], bounds[1], z)
    return [TileId(z, x, y) for x in range(first.x, last.x + 1) for y in range(first.y, last.y + 1)]


def main() -> None:
    grid = grid_for_bbox(BBOX, 10.0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"map: {grid.width} x {grid.height} px at 10 m ({grid.width * grid.height / 1e4:,.0f} km²), {grid.crs}")
    with tempfile.TemporaryDirectory(prefix="cropai-bench-tiles-") as temp:
        store = LocalStore(Path(temp) / "store")
        path = Path(temp) / "cropmap.tif"
        labels = parcel_map(grid.shape)
        write_map(
            labels,
            np.full(grid.shape, 200, np.uint8),
            grid,
            path,
            analysis_id="bench",
            model="bench",
            legend=SYNTHETIC_LEGEND,
        )
        store.put("analyses/bench/cropmap.tif", path)
        print(
            f"{'zoom':>4} {'tiles':>6} {'cold p50 ms':>12} {'cold p95 ms':>12} "
            f"{'cached p50 ms':>14} {'cold tiles/s':>13}"
        )
        for z in range(10, 18):
            cold, cached = [], []
            for tile in tiles_at(z):
                started = time.perf_counter()
                map_tile(store, "analyses/bench/cropmap.tif", "bench", tile)
                cold.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                map_tile(store, "analyses/bench/cropmap.tif", "bench", tile)
                cached.append((time.perf_counter() - started) * 1000)
            p95 = statistics.quantiles(cold, n=20)[-1] if len(cold) >= 2 else cold[0]
            print(
                f"{z:>4} {len(cold):>6} {statistics.median(cold):>12.1f} {p95:>12.1f} "
                f"{statistics.median(cached):>14.2f} {1000 * len(cold) / sum(cold):>13.0f}"
            )


if __name__ == "__main__":
    main()
