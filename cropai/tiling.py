"""Cutting an analysis grid into model tiles and tiles into batches.

A model sees ``tile_size`` pixels square; each tile keeps only its *core*, the
tile minus ``overlap`` pixels on every side. Cores cut the grid without gaps or
overlaps, so every output pixel is written by exactly one tile; the halo around a
core gives the model the context a single pass over the whole area would have
given it (it must be at least the model's receptive-field radius). Batches group
tiles so that one task carries a few megapixels of work: enough to dwarf the
orchestration cost of a task, small enough that a lost worker costs little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from cropai.errors import InvalidInput
from cropai.grid import Grid

# About 1 Mpix of cores per batch: several seconds of work on one core, and the batch's
# season of windows (one bin at a time) in a few hundred MB.
DEFAULT_BATCH_PIXELS = 1_000_000


@dataclass(frozen=True)
class Tile:
    """A core window ``row, col, height, width`` (grid pixels) predicted within a ``size``-pixel
    square that starts ``halo`` pixels above and left of it (cores at the grid's edge are
    smaller, their squares are not, so that every tile has the model's input size)."""

    index: int
    row: int
    col: int
    height: int
    width: int
    halo: int
    size: int

    @property
    def core(self) -> Window:
        return Window(self.col, self.row, self.width, self.height)

    @property
    def padded(self) -> Window:
        """The window the model reads; it may reach past the grid's edge."""
        return Window(self.col - self.halo, self.row - self.halo, self.size, self.size)

    def padded_transform(self, grid: Grid) -> Affine:
        transform: Affine = window_transform(self.padded, grid.transform)
        return transform


@dataclass(frozen=True)
class Batch:
    index: int
    tiles: tuple[Tile, ...]

    @property
    def pixels(self) -> int:
        return sum(t.height * t.width for t in self.tiles)

    @property
    def padded(self) -> Window:
        """The smallest window holding every tile's padded window."""
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
    overlap: int,
    aoi_mask: npt.NDArray[np.bool_] | None = None,
    batch_pixels: int = DEFAULT_BATCH_PIXELS,
) -> TilePlan:
    """Tiles whose cores cover ``grid`` (or the True pixels of ``aoi_mask``, shape ``grid.shape``),
    grouped into square blocks of about ``batch_pixels`` core pixels: a batch then reads one
    compact window of each scene for all its tiles."""
    core = tile_size - 2 * overlap
    if overlap < 0 or core < 16:
        raise InvalidInput(f"tile size {tile_size} with overlap {overlap} leaves a core of {core} px: expected >= 16")
    side = max(1, math.isqrt(max(1, batch_pixels // (core * core))))  # tiles per block side
    rows, cols = math.ceil(grid.height / core), math.ceil(grid.width / core)
    batches: list[Batch] = []
    count = 0
    for block_row in range(0, rows, side):
        for block_col in range(0, cols, side):
            tiles = []
            for tile_row in range(block_row, min(block_row + side, rows)):
                for tile_col in range(block_col, min(block_col + side, cols)):
                    row, col = tile_row * core, tile_col * core
                    height, width = min(core, grid.height - row), min(core, grid.width - col)
                    if aoi_mask is not None and not aoi_mask[row : row + height, col : col + width].any():
                        continue
                    tiles.append(Tile(count, row, col, height, width, overlap, tile_size))
                    count += 1
            if tiles:
                batches.append(Batch(len(batches), tuple(tiles)))
    return TilePlan(grid, tile_size, overlap, tuple(batches))
