import numpy as np
import pytest

from cropai.analysis import batch_pixels_within
from cropai.errors import InvalidInput
from cropai.grid import Grid
from cropai.tiling import DEFAULT_BATCH_PIXELS, plan_tiles

GRID = Grid("EPSG:32631", 10.0, 400_000.0, 5_340_000.0, width=500, height=300)
LARGE = Grid("EPSG:32631", 10.0, 400_000.0, 5_340_000.0, width=2000, height=2000)


@pytest.mark.parametrize(("grid", "halo"), [(GRID, 16), (GRID, 2), (LARGE, 2), (LARGE, 0)])
def test_cores_cover_the_grid_exactly_once(grid: Grid, halo: int) -> None:
    plan = plan_tiles(grid, tile_size=256, halo=halo)
    coverage = np.zeros(grid.shape, dtype=int)
    for tile in plan.tiles:
        coverage[tile.row : tile.row + tile.height, tile.col : tile.col + tile.width] += 1
    assert (coverage == 1).all()
    assert plan.core_size == 256 - 2 * halo


def test_every_core_keeps_the_halo_inside_its_input_window() -> None:
    plan = plan_tiles(LARGE, tile_size=256, halo=2)
    for tile in plan.tiles:
        window = tile.padded
        assert window.row_off <= tile.row - 2 and tile.row + tile.height + 2 <= window.row_off + window.height
        assert window.col_off <= tile.col - 2 and tile.col + tile.width + 2 <= window.col_off + window.width
        rows, cols = tile.core_in_input
        assert (rows.stop - rows.start, cols.stop - cols.start) == (tile.height, tile.width)


def test_a_batch_composites_its_block_and_the_halo_only() -> None:
    plan = plan_tiles(LARGE, tile_size=256, halo=2)
    composited = sum(b.padded.width * b.padded.height for b in plan.batches)
    assert composited / LARGE.width / LARGE.height < 1.01  # 16 px halos per tile composited 24 % more
    predicted = sum(t.input_height * t.input_width for t in plan.tiles)
    assert predicted / LARGE.width / LARGE.height < 1.06  # the model ran on 46 % more
    for batch in plan.batches:  # every tile reads inside what its batch composited
        padded = batch.padded
        for tile in batch.tiles:
            window = tile.padded
            assert padded.row_off <= window.row_off and window.row_off + window.height <= padded.row_off + padded.height
            assert padded.col_off <= window.col_off and window.col_off + window.width <= padded.col_off + padded.width


def test_blocks_are_balanced_so_that_edge_batches_are_not_mostly_padding() -> None:
    grid = Grid("EPSG:32631", 10.0, 400_000.0, 5_340_000.0, width=9 * 224, height=224)
    plan = plan_tiles(grid, tile_size=256, halo=16, batch_pixels=16 * 224 * 224)  # 4 x 4 tiles asked
    assert sorted(len(b.tiles) for b in plan.batches) == [3, 3, 3]  # not 4, 4 and 1
    assert sum(b.pixels for b in plan.batches) == grid.width * grid.height


def test_block_edges_fall_on_core_multiples_so_no_two_batches_write_one_chunk() -> None:
    plan = plan_tiles(LARGE, tile_size=256, halo=2)
    core = plan.core_size
    for tile in plan.tiles:
        assert tile.row % core == 0 and tile.col % core == 0


def test_the_largest_batches_come_first() -> None:
    mask = np.zeros(LARGE.shape, dtype=bool)
    mask[:1500, :] = True
    mask[1500:, :300] = True  # the bottom blocks meet the AOI only on the left
    plan = plan_tiles(LARGE, tile_size=256, halo=2, aoi_mask=mask)
    areas = [b.padded.width * b.padded.height for b in plan.batches]
    assert areas == sorted(areas, reverse=True) and areas[-1] < areas[0]
    assert [b.index for b in plan.batches] == list(range(len(plan.batches)))
    assert [t.index for t in plan.tiles] == list(range(len(plan.tiles)))


def test_an_edge_tile_reads_back_into_its_block_not_past_the_grid() -> None:
    plan = plan_tiles(LARGE, tile_size=256, halo=2)
    last = max(plan.tiles, key=lambda t: (t.row, t.col))
    assert last.row + last.height == 2000 and last.height < 252
    assert (last.input_row + last.input_height, last.input_height) == (2002, 256)


def test_tiles_outside_the_aoi_are_left_out() -> None:
    mask = np.zeros(GRID.shape, dtype=bool)
    mask[:10, :10] = True
    plan = plan_tiles(GRID, 256, 16, aoi_mask=mask)
    assert len(plan.tiles) == 1
    assert plan.tiles[0].padded.col_off == -16 and plan.tiles[0].padded.row_off == -16


def test_a_halo_that_eats_the_tile_is_refused() -> None:
    with pytest.raises(InvalidInput, match="leaves a core"):
        plan_tiles(GRID, tile_size=32, halo=16)


def test_batches_shrink_to_fit_the_workers_memory() -> None:
    roomy = batch_pixels_within(6 * 2**30, bins=6, bands=10, scenes_per_bin=7)
    small = batch_pixels_within(2**30, bins=6, bands=10, scenes_per_bin=7)
    dense = batch_pixels_within(2**30, bins=6, bands=10, scenes_per_bin=30)  # daily scenes: deeper bins
    tiny = batch_pixels_within(300 * 2**20, bins=6, bands=10, scenes_per_bin=7)
    assert roomy > DEFAULT_BATCH_PIXELS > small > dense > tiny == 65_536  # one tile at the least
    plan = plan_tiles(LARGE, tile_size=256, halo=2, batch_pixels=small)
    assert max(b.pixels for b in plan.batches) <= small * 1.5
    assert len(plan.batches) > len(plan_tiles(LARGE, tile_size=256, halo=2).batches)
