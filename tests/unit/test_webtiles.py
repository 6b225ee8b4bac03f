import io
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from PIL import Image
from rasterio.warp import transform, transform_geom

from cropai.cropmap import write_map
from cropai.crops import SYNTHETIC_LEGEND
from cropai.errors import InvalidInput, ObjectNotFound
from cropai.grid import grid_for_bbox
from cropai.storage import LocalStore
from cropai.webtiles import (
    CONFIDENCE_RAMP,
    TILE_PX,
    TRANSPARENT_PNG,
    MapLayer,
    TileId,
    ZoomRange,
    confidence_colours,
    map_tile,
    render_tile,
    tile_key,
    tiles_prefix,
    zoom_range,
)
from testkit.crop_maps import AOI, AREA, AWAY, CORNER, MAIZE, WHEAT, tile_of, write_two_class_map


@pytest.fixture
def crop_map(tmp_path: Path) -> Path:
    return write_two_class_map(tmp_path / "cropmap.tif")


def pixel_centres(tile: TileId, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) arrays of the tile's pixel centres in ``crs``."""
    left, _, _, top = tile.bounds
    cols, rows = np.meshgrid(np.arange(TILE_PX) + 0.5, np.arange(TILE_PX) + 0.5)
    xs, ys = left + cols.ravel() * tile.resolution_m, top - rows.ravel() * tile.resolution_m
    x, y = transform("EPSG:3857", crs, xs, ys)
    return np.array(x).reshape(TILE_PX, TILE_PX), np.array(y).reshape(TILE_PX, TILE_PX)


def test_tile_bounds_match_the_slippy_map_corners() -> None:
    tile = TileId(10, 518, 352)  # over Paris
    n = 2**tile.z
    west, east = tile.x / n * 360 - 180, (tile.x + 1) / n * 360 - 180
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * tile.y / n))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (tile.y + 1) / n))))
    (left, right), (bottom, top) = transform("EPSG:4326", "EPSG:3857", [west, east], [south, north])
    assert tile.bounds == pytest.approx((left, bottom, right, top), abs=0.01)


def test_the_zoom_0_tile_is_the_whole_web_mercator_world() -> None:
    assert TileId(0, 0, 0).bounds == pytest.approx((-20037508.34, -20037508.34, 20037508.34, 20037508.34))


@pytest.mark.parametrize(("z", "x", "y"), [(-1, 0, 0), (23, 0, 0), (2, 4, 0), (2, 0, -1)])
def test_a_tile_that_does_not_exist_is_refused(z: int, x: int, y: int) -> None:
    with pytest.raises(InvalidInput, match=r"outside|does not exist"):
        TileId(z, x, y)


def test_pixels_outside_the_aoi_are_transparent(crop_map: Path) -> None:
    with rasterio.open(crop_map) as src:
        rgba = render_tile(src, CORNER)
        x, y = pixel_centres(CORNER, src.crs.to_string())
        aoi = shapely.geometry.shape(transform_geom("EPSG:4326", src.crs, AOI))
    distance = shapely.distance(shapely.points(x, y), aoi.boundary) * np.where(shapely.contains_xy(aoi, x, y), 1, -1)
    assert (rgba[distance < -15, 3] == 0).all()  # outside, beyond a pixel's reach
    assert (rgba[distance > 15, 3] == 255).all()  # inside
    assert (distance < -15).sum() > 1000 and (distance > 15).sum() > 1000  # the tile holds both


def test_the_map_colour_table_colours_the_classes(crop_map: Path) -> None:
    with rasterio.open(crop_map) as src:
        rgba = render_tile(src, CORNER)
        x, _ = pixel_centres(CORNER, src.crs.to_string())
        split_x = src.xy(0, src.width // 2, offset="ul")[0]  # maize west of it, wheat east
    opaque = rgba[..., 3] == 255
    assert (rgba[opaque & (x < split_x - 15)] == (*MAIZE.rgb, 255)).all()
    assert (rgba[opaque & (x > split_x + 15)] == (*WHEAT.rgb, 255)).all()
    assert (opaque & (x < split_x - 15)).sum() > 1000 and (opaque & (x > split_x + 15)).sum() > 1000


def test_a_zoomed_out_tile_keeps_every_class_in_its_colour(crop_map: Path) -> None:
    with rasterio.open(crop_map) as src:
        rgba = render_tile(src, tile_of(1.620, 48.211, 10))
    colours = {tuple(int(v) for v in c) for c in rgba[rgba[..., 3] > 0]}
    assert colours == {(*MAIZE.rgb, 255), (*WHEAT.rgb, 255)}


def test_a_zoomed_out_tile_is_read_from_the_overviews(tmp_path: Path) -> None:
    """A map whose overviews hold wheat and full resolution maize: zoom 11 (76 m tile pixels, the
    map's 10 m pixels are 15 m in Web Mercator) shows the overviews, zoom 14 (10 m) the pixels."""
    grid = grid_for_bbox(AREA, 10.0)
    path = tmp_path / "overviews.tif"
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="uint8", nodata=0, tiled=True)
    with rasterio.open(path, "w", crs=grid.crs, transform=grid.transform, **profile) as dst:
        dst.write(np.full(grid.shape, WHEAT.id, np.uint8), 1)
        dst.build_overviews([2, 4], rasterio.enums.Resampling.nearest)
        dst.write_colormap(1, SYNTHETIC_LEGEND.colour_table())
    with rasterio.open(path, "r+") as dst:
        dst.write(np.full(grid.shape, MAIZE.id, np.uint8), 1)  # the overviews keep wheat
    with rasterio.open(path) as src:
        zoomed_out, zoomed_in = render_tile(src, tile_of(1.620, 48.211, 11)), render_tile(src, CORNER)
    assert {tuple(int(v) for v in c) for c in zoomed_out[zoomed_out[..., 3] > 0]} == {(*WHEAT.rgb, 255)}
    assert {tuple(int(v) for v in c) for c in zoomed_in[zoomed_in[..., 3] > 0]} == {(*MAIZE.rgb, 255)}


def test_a_tile_away_from_the_map_is_all_transparent(crop_map: Path) -> None:
    with rasterio.open(crop_map) as src:
        assert not render_tile(src, AWAY).any()  # Paris, 80 km away


def test_rendered_tiles_are_cached_in_the_store_and_empty_ones_are_not(crop_map: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("analyses/a/cropmap.tif", crop_map)
    first = map_tile(store, "analyses/a/cropmap.tif", "a", CORNER)
    assert store.get(tile_key("a", CORNER)) == first
    assert Image.open(io.BytesIO(first)).size == (TILE_PX, TILE_PX)
    store.delete("analyses/a/cropmap.tif")  # a cached tile no longer needs the map
    assert map_tile(store, "analyses/a/cropmap.tif", "a", CORNER) == first
    store.put("analyses/a/cropmap.tif", crop_map)
    assert map_tile(store, "analyses/a/cropmap.tif", "a", AWAY) == TRANSPARENT_PNG
    assert not store.exists(tile_key("a", AWAY))


def test_tiles_inside_the_aoi_have_no_transparent_seams(crop_map: Path) -> None:
    """Every pixel of every zoom-16 tile wholly inside the AOI is painted, edges included."""
    west, south, east, north = shapely.geometry.shape(AOI).buffer(-0.0005).bounds
    first, last = tile_of(west, north, 16), tile_of(east, south, 16)
    inside = [TileId(16, x, y) for x in range(first.x + 1, last.x) for y in range(first.y + 1, last.y)]
    assert len(inside) >= 2
    with rasterio.open(crop_map) as src:
        for tile in inside:
            assert (render_tile(src, tile)[..., 3] == 255).all(), tile


@pytest.fixture
def stored_map(crop_map: Path, tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.put("analyses/a/cropmap.tif", crop_map)
    return store


def test_a_map_is_tiled_from_two_zooms_out_of_its_extent_to_three_in_from_its_pixels(crop_map: Path) -> None:
    # 3 km wide at 48.2 deg N, 4.5 km in Web Mercator: one zoom-13 tile (4.9 km) holds it. Its 10 m
    # pixels are 15 m in Web Mercator: zoom-14 tile pixels (9.6 m) are the first as fine.
    with rasterio.open(crop_map) as src:
        assert zoom_range(src) == ZoomRange(13 - 2, 14 + 3)


@pytest.mark.parametrize("z", [10, 18, 22])
def test_tiles_outside_the_zoom_range_are_refused_naming_it(stored_map: LocalStore, z: int) -> None:
    with pytest.raises(ObjectNotFound, match="tiled at zooms 11 to 17"):
        map_tile(stored_map, "analyses/a/cropmap.tif", "a", tile_of(1.606, 48.204, z))
    assert stored_map.list(tiles_prefix("a")) == []


def inside_tiles(z: int) -> list[TileId]:
    west, south, east, north = shapely.geometry.shape(AOI).buffer(-0.0005).bounds
    first, last = tile_of(west, north, z), tile_of(east, south, z)
    return [TileId(z, x, y) for x in range(first.x, last.x + 1) for y in range(first.y, last.y + 1)]


def test_beyond_the_cache_limit_tiles_are_rendered_but_not_cached(stored_map: LocalStore) -> None:
    first, second, third = inside_tiles(16)[:3]
    bodies = [
        map_tile(stored_map, "analyses/a/cropmap.tif", "a", tile, max_cached=2) for tile in (first, second, third)
    ]
    assert stored_map.exists(tile_key("a", first)) and stored_map.exists(tile_key("a", second))
    assert not stored_map.exists(tile_key("a", third))
    assert np.asarray(Image.open(io.BytesIO(bodies[2])))[..., 3].any()  # painted all the same


def test_tiles_cached_before_count_towards_the_limit(stored_map: LocalStore) -> None:
    earlier, later = inside_tiles(16)[:2]
    stored_map.put(tile_key("a", earlier), TRANSPARENT_PNG)  # cached by another process, or before a restart
    map_tile(stored_map, "analyses/a/cropmap.tif", "a", later, max_cached=1)
    assert not stored_map.exists(tile_key("a", later))


# --- the confidence layer ---------------------------------------------------------------------


def ramp_rgba(percent: float) -> tuple[int, ...]:
    step = next(
        s for s in CONFIDENCE_RAMP if s.lower_percent <= percent < s.upper_percent or percent == s.upper_percent == 100
    )
    return (*step.rgb, 255)


def test_the_confidence_ramp_runs_from_0_to_100_percent_in_steps_without_gaps() -> None:
    bounds = [(s.lower_percent, s.upper_percent) for s in CONFIDENCE_RAMP]
    assert bounds[0][0] == 0 and bounds[-1][1] == 100
    assert all(upper == lower for (_, upper), (lower, _) in itertools.pairwise(bounds))
    assert len({s.colour for s in CONFIDENCE_RAMP}) == len(CONFIDENCE_RAMP) >= 5


@pytest.mark.parametrize(("byte", "percent"), [(1, 0.4), (50, 19.6), (51, 20), (153, 60), (203, 79.6), (255, 100)])
def test_a_confidence_byte_is_painted_in_the_step_of_its_percent(byte: int, percent: float) -> None:
    assert tuple(int(v) for v in confidence_colours()[byte]) == ramp_rgba(percent)


def test_no_confidence_is_transparent() -> None:
    assert not confidence_colours()[0].any()


def test_confidence_tiles_are_painted_inside_the_aoi_only(crop_map: Path) -> None:
    """The test map keeps confidence 200 (78 %) outside its AOI too: the class band still hides it."""
    with rasterio.open(crop_map) as src:
        rgba = render_tile(src, CORNER, MapLayer.CONFIDENCE)
        classes = render_tile(src, CORNER)
    assert ((rgba[..., 3] == 255) == (classes[..., 3] == 255)).all()
    assert {tuple(int(v) for v in c) for c in rgba[rgba[..., 3] > 0]} == {ramp_rgba(200 / 255 * 100)}


@pytest.fixture
def rising_confidence_map(crop_map: Path, tmp_path: Path) -> Path:
    """The two-class map with confidence rising from 1 % at the AOI's west edge to 100 % at its east edge."""
    with rasterio.open(crop_map) as src:
        labels = src.read(1)
    mapped_columns = np.flatnonzero((labels > 0).any(axis=0))
    rising = np.zeros(labels.shape[1], np.uint8)
    rising[mapped_columns[0] : mapped_columns[-1] + 1] = np.linspace(3, 255, mapped_columns[-1] - mapped_columns[0] + 1)
    confidence = np.where(labels > 0, np.broadcast_to(rising, labels.shape), 0).astype(np.uint8)
    path = tmp_path / "rising.tif"
    grid = grid_for_bbox(AREA, 10.0)
    write_map(labels, confidence, grid, path, analysis_id="test", model="cropnet@1.0.0", legend=SYNTHETIC_LEGEND)
    return path


def test_a_map_whose_confidence_rises_shows_every_step_of_the_ramp(rising_confidence_map: Path) -> None:
    with rasterio.open(rising_confidence_map) as src:
        rgba = render_tile(src, tile_of(1.620, 48.211, 12), MapLayer.CONFIDENCE)  # the whole AOI
    colours = {tuple(int(v) for v in c) for c in rgba[rgba[..., 3] > 0]}
    assert colours == {(*s.rgb, 255) for s in CONFIDENCE_RAMP}


def test_confidence_tiles_are_cached_apart_from_class_tiles(stored_map: LocalStore) -> None:
    classes = map_tile(stored_map, "analyses/a/cropmap.tif", "a", CORNER)
    confidence = map_tile(stored_map, "analyses/a/cropmap.tif", "a", CORNER, layer=MapLayer.CONFIDENCE)
    assert classes != confidence
    assert stored_map.get(tile_key("a", CORNER)) == classes
    assert stored_map.get(tile_key("a", CORNER, MapLayer.CONFIDENCE)) == confidence
    assert {o.key for o in stored_map.list(tiles_prefix("a"))} == {
        tile_key("a", CORNER),
        tile_key("a", CORNER, MapLayer.CONFIDENCE),
    }
