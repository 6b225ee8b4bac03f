"""Cutting an analysis grid into batches (blocks) and blocks into model tiles.

A batch is a block of the grid: one task reads and composites the block once,
with ``halo`` pixels of context around it, then runs the model over it tile by
tile. Each tile keeps only its *core*; cores cut the block (and blocks the grid)
without gaps or overlaps, so every output pixel is written by exactly one tile.
The halo is the model's receptive radius: the context a single pass over the
whole area would have given each core pixel, and no more, so nothing is
composited or predicted twice beyond it. Blocks start on multiples of the core
size (the prediction Zarr's chunks), so that no two batches write one chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from rasterio.windows import Window

from cropai.errors import InvalidInput
from cropai.grid import Grid

# About 1 Mpix of cores per batch: several seconds of work on one core, and the batch's
# season composite in a few hundred MB. Smaller where a worker has less memory.
DEFAULT_BATCH_PIXELS = 1_000_000


@dataclass(frozen=True)
class Tile:
    """A core window ``row, col, height, width`` (grid pixels) predicted from the model input
    window ``input_row, input_col, input_height, input_width``, which holds the core and at
    least the halo on every side. The last tile of a block's row or column has its input window
    shifted back into the block, so that it reads nothing the block did not composite."""

    index: int
    row: int
    col: int
    height: int
    width: int
    input_row: int
    input_col: int
    input_height: int
    input_width: int

    @property
    def core(self) -> Window:
        return Window(self.col, self.row, self.width, self.height)

    @property
    def padded(self) -> Window:
        """The window the model reads; it may reach past the grid's edge."""
        return Window(self.input_col, self.input_row, self.input_width, self.input_height)

    @property
    def core_in_input(self) -> tuple[slice, slice]:
        """Where the core lies in the model's input (and output) window."""
        top, left = self.row - self.input_row, self.col - self.input_col
        return slice(top, top + self.height), slice(left, left + self.width)


@dataclass(frozen=True)
class Batch:
    """A block of the grid: its tiles' cores cover it (those meeting the AOI), and ``padded``,
    the block with the halo around it, is what the batch composites."""

    index: int
    tiles: tuple[Tile, ...]

    @property
    def pixels(self) -> int:
        return sum(t.height * t.width for t in self.tiles)

    @property
    def padded(self) -> Window:
        """The smallest window holding every tile's input window."""
        windows = [t.padded for t in self.tiles]
        top, left = min(w.row_off for w in windows), min(w.col_off for w in windows)
        bottom = max(w.row_off + w.height for w in windows)
        right = max(w.col_off + w.width for w in windows)
        return Window(left, top, right - left, bottom - top)


@dataclass(frozen=True)
class TilePlan:
    grid: Grid
    tile_size: int
    halo: int
    batches: tuple[Batch, ...]

    @property
    def core_size(self) -> int:
        return self.tile_size - 2 * self.halo

    @property
    def tiles(self) -> list[Tile]:
        return [tile for batch in self.batches for tile in batch.tiles]


def plan_tiles(
    grid: Grid,
    tile_size: int,
    halo: int,
    aoi_mask: npt.NDArray[np.bool_] | None = None,
    batch_pixels: int = DEFAULT_BATCH_PIXELS,
) -> TilePlan:
    """Blocks of about ``batch_pixels`` core pixels that cover ``grid`` (or the True pixels of
    ``aoi_mask``, shape ``grid.shape``), each cut into tiles of at most ``tile_size`` px square
    with ``halo`` px of context.

    Blocks along each axis hold numbers of tiles that differ by at most one, so no edge block
    is mostly padding; batches are numbered largest first, so that the last tasks of an
    analysis are short ones and no worker waits long for the slowest."""
    core = tile_size - 2 * halo
    if halo < 0 or core < 16:
        raise InvalidInput(f"tile size {tile_size} with halo {halo} leaves a core of {core} px: expected >= 16")
    side = max(1, round(math.sqrt(batch_pixels) / core))  # tiles per block side
    blocks = [
        _block_tiles((rows, cols), core, halo, aoi_mask)
        for rows in _blocks(grid.height, core, side)
        for cols in _blocks(grid.width, core, side)
    ]
    blocks = sorted((b for b in blocks if b), key=_input_area, reverse=True)
    batches, count = [], 0
    for number, block in enumerate(blocks):
        batches.append(Batch(number, tuple(replace(t, index=count + i) for i, t in enumerate(block))))
        count += len(block)
    return TilePlan(grid, tile_size, halo, tuple(batches))


def _blocks(length: int, core: int, side: int) -> list[tuple[int, int]]:
    """``(start, stop)`` pixel spans of blocks along an axis of ``length`` px: whole tiles of
    ``core`` px each (the last one may be cut by the grid's edge), about ``side`` per block and
    spread evenly."""
    tiles = math.ceil(length / core)
    count = math.ceil(tiles / side)
    base, extra = divmod(tiles, count)
    spans, start = [], 0
    for number in range(count):
        stop = min(length, start + (base + (number < extra)) * core)
        spans.append((start, stop))
        start = stop
    return spans


def _block_tiles(
    spans: tuple[tuple[int, int], tuple[int, int]], core: int, halo: int, aoi_mask: npt.NDArray[np.bool_] | None
) -> list[Tile]:
    """The tiles of one block (index 0 for now), those whose core meets the AOI."""
    (top, bottom), (left, right) = spans
    tiles = []
    for row, height, input_row, input_height in _axis_tiles(top, bottom, core, halo):
        for col, width, input_col, input_width in _axis_tiles(left, right, core, halo):
            if aoi_mask is not None and not aoi_mask[row : row + height, col : col + width].any():
                continue
            tiles.append(Tile(0, row, col, height, width, input_row, input_col, input_height, input_width))
    return tiles


def _axis_tiles(start: int, stop: int, core: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Along one axis of a block: (core start, core length, input start, input length) per tile.
    Inputs are ``core + 2 * halo`` long (shorter only when the whole block is) and never leave
    the block's padded span."""
    length = min(core, stop - start) + 2 * halo
    return [(at, min(core, stop - at), min(at - halo, stop + halo - length), length) for at in range(start, stop, core)]


def _input_area(tiles: list[Tile]) -> int:
    """What a block costs: the pixels it composites."""
    padded = Batch(0, tuple(tiles)).padded
    return int(padded.width * padded.height)
