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
from affine import Affine
from rasterio.windows import Window

from cropai.errors import InvalidInput
from cropai.grid import Grid

DEFAULT_BATCH_PIXELS = 4_000_000


@dataclass(frozen=True)
class Tile:
    """A core window ``row, col, height, width`` (grid pixels) predicted with ``halo`` pixels around it."""

    index: int
    row: int
    col: int
    height: int
    width: int
    halo: int

    @property
    def core(self) -> Window:
        return Window(self.col, self.row, self.width, self.height)

    @property
    def padded(self) -> Window:
        """The window the model reads; it may reach past the grid's edge."""
        return Window(self.col - self.halo, self.row - self.halo, self.width + 2 * self.halo, self.height + 2 * self.halo)

    def padded_transform(self, grid: Grid) -> Affine:
        return grid.transform @ Affine.translation(self.col - self.halo, self.row - self.halo)


@dataclass(frozen=True)
class Batch:
    index: int
    tiles: tuple[Tile, ...]

    @property
    def pixels(self) -> int:
        return sum(t.height * t.width for t in self.tiles)


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
    aoi_mask: np.ndarray | None = None,
    batch_pixels: int = DEFAULT_BATCH_PIXELS,
) -> TilePlan:
    """Tiles whose cores cover ``grid`` (or the True pixels of ``aoi_mask``, shape ``grid.shape``),
    in row-major order, grouped into batches of about ``batch_pixels`` core pixels."""
    core = tile_size - 2 * overlap
    if overlap < 0 or core < 16:
        raise InvalidInput(f"tile size {tile_size} with overlap {overlap} leaves a core of {core} px: expected >= 16")
    tiles = []
    for row in range(0, grid.height, core):
        for col in range(0, grid.width, core):
            height, width = min(core, grid.height - row), min(core, grid.width - col)
            if aoi_mask is not None and not aoi_mask[row : row + height, col : col + width].any():
                continue
            tiles.append(Tile(len(tiles), row, col, height, width, overlap))
    per_batch = max(1, math.floor(batch_pixels / (core * core)))
    batches = tuple(
        Batch(number, tuple(tiles[start : start + per_batch]))
        for number, start in enumerate(range(0, len(tiles), per_batch))
    )
    return TilePlan(grid, tile_size, overlap, batches)
