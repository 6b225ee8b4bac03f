"""Web map tiles of a crop map: the XYZ scheme of web maps (Web Mercator, EPSG:3857,
256 px tiles, y counted down from the north), rendered from the map's COG.

A tile is read from the coarsest overview of the COG still as fine as the tile (the map
itself when none is), at that overview's resolution, reprojected with nearest neighbour
so class ids stay class ids, and coloured by its ``MapLayer``: the class band with the
COG's own colour table, or the confidence band through ``CONFIDENCE_RAMP``. Class 0 (no
data, and everything outside the AOI) is transparent on every layer, so a tile beside or
around the AOI shows the base map through.

Tiles are served, rendered and cached only at the zooms that show the map usefully
(``ZoomRange``), and at most ``MAX_CACHED_TILES`` per analysis are cached: beyond it
tiles are rendered on every request, so no viewer can fill the store.

rasterio is imported when a tile is rendered, not with this module: the API process
imports it and stays small until a map is viewed.

Rendered by hand rather than with rio-tiler: rio-tiler 9.4 reads through a GDAL WarpedVRT, which
was slower at every zoom and about 50 times slower on tiles coarser than the map's last overview,
and importing it loads xarray and Dask (docs/benchmarks.md, "Map tiles").
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from affine import Affine
from PIL import Image

from cropai.errors import InvalidInput, ObjectNotFound
from cropai.storage import ObjectStore

if TYPE_CHECKING:
    import rasterio
    from rasterio.windows import Window

TILE_PX = 256
MAX_ZOOM = 22  # ~4 cm per pixel at the equator: far finer than any 10 m map needs
WEB_MERCATOR = "EPSG:3857"
# Half the width of the Web Mercator world, metres: pi x the WGS 84 semi-major axis.
HALF_WORLD_M = math.pi * 6378137.0
# Zooms shown around a map: this many out from the one where it fits in one tile, this many
# in beyond the one where a tile pixel is as fine as a map pixel.
ZOOMS_OUT = 2
ZOOMS_IN = 3
# The most tiles cached per analysis (a few KB each): every tile, at every zoom, of a map
# about 15 km across; a larger map caches the tiles viewed first.
MAX_CACHED_TILES = 20_000


class MapLayer(StrEnum):
    """What a tile shows: ``class`` (band 1 in the map's colour table) or ``confidence``
    (band 2, the probability of the predicted class x 255, through ``CONFIDENCE_RAMP``)."""

    CLASS = "class"
    CONFIDENCE = "confidence"


@dataclass(frozen=True)
class RampStep:
    """Pixels whose confidence is from ``lower_percent`` (included) to ``upper_percent``
    (excluded; 100 included in the last step) are painted ``colour`` ("#rrggbb")."""

    lower_percent: int
    upper_percent: int
    colour: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        return int(self.colour[1:3], 16), int(self.colour[3:5], 16), int(self.colour[5:7], 16)


# Five 20 % steps of viridis (matplotlib's default map: perceptually even, readable with red-green
# colour blindness and in grey), sampled at each step's centre: dark purple unsure, yellow-green sure.
# The viewer's legend (api/web/js/map.js) repeats these colours.
CONFIDENCE_RAMP: tuple[RampStep, ...] = (
    RampStep(0, 20, "#482475"),
    RampStep(20, 40, "#355f8d"),
    RampStep(40, 60, "#21918c"),
    RampStep(60, 80, "#44bf70"),
    RampStep(80, 100, "#bddf26"),
)


def confidence_colours() -> npt.NDArray[np.uint8]:
    """RGBA per confidence byte, shape (256, 4) uint8: a byte's step in ``CONFIDENCE_RAMP`` by
    its percent (byte / 255 x 100), opaque; 0 (no data) transparent."""
    table = np.zeros((256, 4), dtype=np.uint8)
    scaled = np.arange(256) * 100  # percent x 255, in integers so 20 % is exactly byte 51
    for step in CONFIDENCE_RAMP:
        within = (scaled >= step.lower_percent * 255) & (
            (scaled < step.upper_percent * 255) | (step.upper_percent == 100)
        )
        table[within] = (*step.rgb, 255)
    table[0] = (0, 0, 0, 0)
    return table


@dataclass(frozen=True)
class TileId:
    """One XYZ tile: zoom ``z`` (0 = the world in one tile), column ``x`` from the
    antimeridian eastwards, row ``y`` from the north edge (85.05° N) southwards."""

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not 0 <= self.z <= MAX_ZOOM:
            raise InvalidInput(f"zoom {self.z} is outside 0..{MAX_ZOOM}")
        last = 2**self.z - 1
        if not (0 <= self.x <= last and 0 <= self.y <= last):
            raise InvalidInput(
                f"tile {self.z}/{self.x}/{self.y} does not exist: at zoom {self.z} x and y run 0..{last}"
            )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in EPSG:3857 metres."""
        size = 2 * HALF_WORLD_M / 2**self.z
        left, top = -HALF_WORLD_M + self.x * size, HALF_WORLD_M - self.y * size
        return left, top - size, left + size, top

    @property
    def resolution_m(self) -> float:
        """Width of one tile pixel in EPSG:3857 metres."""
        return 2 * HALF_WORLD_M / 2.0**self.z / TILE_PX


@dataclass(frozen=True)
class ZoomRange:
    """The zooms a map is tiled at, both included."""

    min_zoom: int
    max_zoom: int

    def __contains__(self, z: int) -> bool:
        return self.min_zoom <= z <= self.max_zoom


def zoom_range(src: rasterio.DatasetReader) -> ZoomRange:
    """From ``ZOOMS_OUT`` out from the zoom at which the whole of ``src`` fits in one tile to
    ``ZOOMS_IN`` in from the first zoom whose tile pixels are as fine as its pixels, within 0..22."""
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(src.crs, WEB_MERCATOR, *src.bounds, densify_pts=21)
    extent_m = max(right - left, top - bottom)
    fits = math.floor(math.log2(2 * HALF_WORLD_M / extent_m))
    pixel_m = min((right - left) / src.width, (top - bottom) / src.height)  # EPSG:3857 metres, as on the tiles
    native = math.ceil(math.log2(2 * HALF_WORLD_M / TILE_PX / pixel_m))
    return ZoomRange(max(0, min(fits - ZOOMS_OUT, MAX_ZOOM)), max(0, min(native + ZOOMS_IN, MAX_ZOOM)))


def tiles_prefix(analysis_id: str) -> str:
    """Where the web tiles rendered from an analysis' map are cached in the store."""
    return f"analyses/{analysis_id}/tiles/"


def tile_key(analysis_id: str, tile: TileId, layer: MapLayer = MapLayer.CLASS) -> str:
    """Each layer's tiles are cached apart, all under ``tiles_prefix``."""
    return f"{tiles_prefix(analysis_id)}{layer}/{tile.z}/{tile.x}/{tile.y}.png"


def render_tile(src: rasterio.DatasetReader, tile: TileId, layer: MapLayer = MapLayer.CLASS) -> npt.NDArray[np.uint8]:
    """The tile as RGBA, shape (256, 256, 4) uint8, of ``layer`` of ``src``.

    ``src`` is a crop map: band 1 class ids with a colour table, band 2 confidence x 255, 0 = no data."""
    rgba = _render(src, tile, layer)
    return np.zeros((TILE_PX, TILE_PX, 4), dtype=np.uint8) if rgba is None else rgba


def _render(src: rasterio.DatasetReader, tile: TileId, layer: MapLayer) -> npt.NDArray[np.uint8] | None:
    """The tile read from the overview of ``src`` nearest its resolution; None when it misses the map."""
    under_tile = _under_tile(src, tile)
    if under_tile is None:
        return None
    with _overview(src, min(under_tile.width, under_tile.height) / TILE_PX) as level:
        window = _source_window(level, tile, under_tile if level is src else None)
        if window is None:
            return None
        labels = _on_tile(level, 1, tile, window)
        if layer is MapLayer.CONFIDENCE:
            rgba = confidence_colours()[_on_tile(level, 2, tile, window)]
            rgba[labels == 0] = 0  # outside the AOI even where a confidence was kept
            return rgba
    table = np.zeros((256, 4), dtype=np.uint8)
    for value, colour in src.colormap(1).items():
        table[value] = colour
    table[0] = (0, 0, 0, 0)
    return table[labels]


@contextmanager
def _overview(src: rasterio.DatasetReader, source_px_per_tile_px: float) -> Iterator[rasterio.DatasetReader]:
    """``src`` opened at its coarsest overview still as fine as the tile (``src`` itself when none
    is). An overview is opened as a dataset of its own: read through ``src`` instead, a window
    of it cost GDAL up to 0.15 s where the overview's own read takes about 1 ms."""
    import rasterio

    levels = [i for i, factor in enumerate(src.overviews(1)) if factor <= source_px_per_tile_px]
    if not levels:
        yield src
        return
    with rasterio.open(src.name, overview_level=levels[-1]) as level:
        yield level


def _on_tile(src: rasterio.DatasetReader, band: int, tile: TileId, window: Window) -> npt.NDArray[np.uint8]:
    """``band`` of ``src`` in ``window``, reprojected onto the tile by nearest neighbour:
    (256, 256) uint8, 0 where the map has no data."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    on_tile = np.zeros((TILE_PX, TILE_PX), dtype=np.uint8)
    left, _, _, top = tile.bounds
    reproject(
        src.read(band, window=window),
        on_tile,
        src_transform=src.window_transform(window),
        src_crs=src.crs,
        src_nodata=0,
        dst_transform=Affine(tile.resolution_m, 0, left, 0, -tile.resolution_m, top),
        dst_crs=WEB_MERCATOR,
        dst_nodata=0,
        resampling=Resampling.nearest,
    )
    return on_tile


def _under_tile(src: rasterio.DatasetReader, tile: TileId) -> Window | None:
    """The (fractional) window of ``src`` under the tile; None when the tile misses it."""
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    bounds = transform_bounds(WEB_MERCATOR, src.crs, *tile.bounds, densify_pts=21)
    under_tile = from_bounds(*bounds, transform=src.transform)
    if (
        under_tile.col_off >= src.width
        or under_tile.row_off >= src.height
        or under_tile.col_off + under_tile.width <= 0
        or under_tile.row_off + under_tile.height <= 0
    ):
        return None
    return under_tile


def _source_window(src: rasterio.DatasetReader, tile: TileId, under_tile: Window | None = None) -> Window | None:
    """The whole pixels of ``src`` that cover the tile (``under_tile`` when known), plus one for the
    nearest-neighbour lookups at its edges; None when the tile misses it."""
    from rasterio.windows import Window

    under_tile = under_tile or _under_tile(src, tile)
    if under_tile is None:
        return None
    col_start = max(0, math.floor(under_tile.col_off) - 1)
    row_start = max(0, math.floor(under_tile.row_off) - 1)
    col_stop = min(src.width, math.ceil(under_tile.col_off + under_tile.width) + 1)
    row_stop = min(src.height, math.ceil(under_tile.row_off + under_tile.height) + 1)
    return Window(col_start, row_start, col_stop - col_start, row_stop - row_start)


def png(rgba: npt.NDArray[np.uint8]) -> bytes:
    """An RGBA array, shape (y, x, 4) uint8, as PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(out, format="PNG", optimize=False)
    return out.getvalue()


TRANSPARENT_PNG = png(np.zeros((TILE_PX, TILE_PX, 4), dtype=np.uint8))


def map_tile(
    store: ObjectStore,
    map_key: str,
    analysis_id: str,
    tile: TileId,
    *,
    layer: MapLayer = MapLayer.CLASS,
    max_cached: int = MAX_CACHED_TILES,
) -> bytes:
    """The tile of ``layer`` as PNG: from the store's cache, or rendered from the COG at ``map_key``
    and cached while the analysis has fewer than ``max_cached`` tiles cached (of all layers).

    Tiles that miss the map are answered without reading its pixels, and are not cached. A zoom
    outside the map's ``ZoomRange`` is an ObjectNotFound naming the range."""
    import rasterio

    tiles = _tiled_map(store, map_key, analysis_id)
    if tile.z not in tiles.zooms:
        raise ObjectNotFound(
            f"no tile at zoom {tile.z}: this map is tiled at zooms {tiles.zooms.min_zoom} to {tiles.zooms.max_zoom}"
        )
    key = tile_key(analysis_id, tile, layer)
    try:
        return store.get(key)
    except ObjectNotFound:
        pass
    with store.gdal_env(), rasterio.open(store.gdal_path(map_key)) as src:
        rgba = _render(src, tile, layer)
    if rgba is None:
        return TRANSPARENT_PNG
    body = png(rgba)
    if tiles.take_cache_slot(max_cached):
        store.put(key, body, content_type="image/png")
    return body


# Each process remembers the maps it has served tiles of: their zoom range (read from the COG
# once) and how many tiles they have cached (listed from the store once, then counted; listed
# again after a while, as a rerun of the analysis empties its cache).
RECOUNT_AFTER_S = 600.0
REMEMBERED_MAPS = 1024


@dataclass
class _TiledMap:
    zooms: ZoomRange
    cached: int
    counted_at: float  # time.monotonic() of the store listing
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_cache_slot(self, max_cached: int) -> bool:
        with self.lock:
            if self.cached >= max_cached:
                return False
            self.cached += 1
            return True


_tiled_maps: OrderedDict[str, _TiledMap] = OrderedDict()
_tiled_maps_lock = threading.Lock()


def _tiled_map(store: ObjectStore, map_key: str, analysis_id: str) -> _TiledMap:
    import rasterio

    where = store.gdal_path(map_key)  # the map's address in this store: unique across stores
    with _tiled_maps_lock:
        known = _tiled_maps.get(where)
        if known is not None:
            _tiled_maps.move_to_end(where)
    if known is not None and time.monotonic() - known.counted_at < RECOUNT_AFTER_S:
        return known
    if known is None:
        with store.gdal_env(), rasterio.open(where) as src:
            zooms = zoom_range(src)
    else:
        zooms = known.zooms
    tiled = _TiledMap(zooms, len(store.list(tiles_prefix(analysis_id))), time.monotonic())
    with _tiled_maps_lock:
        _tiled_maps[where] = tiled
        while len(_tiled_maps) > REMEMBERED_MAPS:
            _tiled_maps.popitem(last=False)
    return tiled
