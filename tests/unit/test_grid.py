import pytest

from cropai.errors import InvalidInput
from cropai.grid import grid_for_bbox, utm_crs_for


@pytest.mark.parametrize(
    ("lon", "lat", "crs"),
    [(1.6, 48.2, "EPSG:32631"), (-93.5, 42.0, "EPSG:32615"), (-47.9, -15.8, "EPSG:32723"), (179.9, 10, "EPSG:32660")],
)
def test_utm_zone_of_a_point(lon: float, lat: float, crs: str) -> None:
    assert utm_crs_for(lon, lat) == crs


def test_grid_edges_lie_on_whole_pixels() -> None:
    grid = grid_for_bbox((1.60, 48.20, 1.64, 48.23), 10.0)
    assert grid.crs == "EPSG:32631"
    assert grid.origin_x_m % 10 == 0 and grid.origin_y_m % 10 == 0
    assert 280 < grid.width < 320 and 320 < grid.height < 360  # ~3 km x ~3.3 km


def test_overlapping_boxes_share_pixel_edges() -> None:
    a = grid_for_bbox((1.60, 48.20, 1.64, 48.23), 10.0)
    b = grid_for_bbox((1.61, 48.21, 1.65, 48.24), 10.0)
    assert (b.origin_x_m - a.origin_x_m) % 10 == 0
    assert (b.origin_y_m - a.origin_y_m) % 10 == 0


def test_grid_covers_the_whole_box() -> None:
    from rasterio.warp import transform_bounds

    bbox = (1.60, 48.20, 1.64, 48.23)
    grid = grid_for_bbox(bbox, 10.0)
    left, bottom, right, top = transform_bounds("EPSG:4326", grid.crs, *bbox)
    gl, gb, gr, gt = grid.bounds
    assert gl <= left and gb <= bottom and gr >= right and gt >= top


@pytest.mark.parametrize(
    "bbox",
    [(2.0, 48.0, 1.0, 49.0), (1.0, 85.0, 2.0, 86.0), (1.0, float("nan"), 2.0, 49.0), (-200, 0, 10, 1)],
)
def test_malformed_boxes_are_refused(bbox: tuple[float, float, float, float]) -> None:
    with pytest.raises(InvalidInput, match="bbox"):
        grid_for_bbox(bbox, 10.0)
