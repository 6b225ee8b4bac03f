import numpy as np
import pytest

from cropai.errors import InvalidInput
from cropai.grid import Grid
from cropai.tiling import plan_tiles

GRID = Grid("EPSG:32631", 10.0, 400_000.0, 5_340_000.0, width=500, height=300)


def test_cores_cover_the_grid_exactly_once() -> None:
    plan = plan_tiles(GRID, tile_size=256, overlap=16)
    coverage = np.zeros(GRID.shape, dtype=int)
    for tile in plan.tiles:
        coverage[tile.row : tile.row + tile.height, tile.col : tile.col + tile.width] += 1
    assert (coverage == 1).all()
    assert plan.core_size == 224


def test_padded_windows_add_the_halo_on_every_side() -> None:
    tile = plan_tiles(GRID, tile_size=256, overlap=16).tiles[0]
    padded = tile.padded
    assert (padded.col_off, padded.row_off, padded.width, padded.height) == (-16, -16, 256, 256)
    assert tile.padded_transform(GRID).c == GRID.origin_x_m - 160


def test_batches_are_square_blocks_of_tiles() -> None:
    plan = plan_tiles(GRID, tile_size=256, overlap=16, batch_pixels=4 * 224 * 224)
    assert [len(b.tiles) for b in plan.batches] == [4, 2]  # 3 x 2 tiles: a 2 x 2 block, then the last column
    assert all(t.padded.width == t.padded.height == 256 for t in plan.tiles)  # edge tiles too
    assert sum(b.pixels for b in plan.batches) == GRID.width * GRID.height
    first = plan.batches[0].padded
    assert (first.col_off, first.row_off, first.width, first.height) == (-16, -16, 480, 480)


def test_tiles_outside_the_aoi_are_left_out() -> None:
    mask = np.zeros(GRID.shape, dtype=bool)
    mask[:10, :10] = True
    assert len(plan_tiles(GRID, 256, 16, aoi_mask=mask).tiles) == 1


def test_a_halo_that_eats_the_tile_is_refused() -> None:
    with pytest.raises(InvalidInput, match="leaves a core"):
        plan_tiles(GRID, tile_size=32, overlap=16)
