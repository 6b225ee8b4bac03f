"""Scene windows on an analysis grid, from either store: read plainly from scenes on the grid,
warped from scenes in another CRS or off the grid, the same pixels either way."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from cropai.raster import aligned_offset, read_window
from cropai.storage import ObjectStore
from testkit.realdata import realdata
from tests.unit.test_raster import ORIGIN, stack, write


def test_a_scene_on_the_grid_is_read_exactly(store: ObjectStore, tmp_path: Path) -> None:
    data = stack(height=100, width=120)
    store.put("scenes/a.tif", Path(write(tmp_path / "a.tif", data, driver="COG")))
    window = read_window(store, "scenes/a.tif", "EPSG:32631", ORIGIN @ Affine.translation(10, 20), 50, 40)
    assert np.array_equal(window, data[:, 20:60, 10:60])


def test_a_scene_in_another_crs_is_warped_onto_the_grid(store: ObjectStore, tmp_path: Path) -> None:
    data = np.full((11, 200, 200), 1234, dtype=np.uint16)
    # The scene is in UTM 31N; the analysis grid is the neighbouring zone, UTM 30N, at the same place.
    store.put("scenes/b.tif", Path(write(tmp_path / "b.tif", data, driver="COG")))
    from rasterio.warp import transform

    xs, ys = transform("EPSG:32631", "EPSG:32630", [400_000 + 1000], [5_340_000 - 1000])
    grid_origin = Affine(10, 0, round(xs[0] / 10) * 10, 0, -10, round(ys[0] / 10) * 10)
    inside = read_window(store, "scenes/b.tif", "EPSG:32630", grid_origin, 20, 20)
    assert (inside == 1234).all()
    far = grid_origin @ Affine.translation(-500, 0)  # 5 km west of the scene: nothing there
    assert (read_window(store, "scenes/b.tif", "EPSG:32630", far, 20, 20) == 0).all()


def warped(store: ObjectStore, key: str, crs: str, transform: Affine, width: int, height: int) -> np.ndarray:
    """The window as GDAL's warper gives it: what a plain read must equal."""
    with (
        store.gdal_env(),
        rasterio.open(store.gdal_path(key)) as src,
        WarpedVRT(
            src, crs=crs, transform=transform, width=width, height=height, resampling=Resampling.nearest, nodata=0
        ) as vrt,
    ):
        return vrt.read()


@pytest.mark.parametrize(
    "offset",
    [(10, 20), (-30, -25), (100, 80), (400, 0)],
    ids=["inside", "over the top-left corner", "over the bottom-right corner", "outside"],
)
def test_a_window_read_plainly_from_an_aligned_scene_equals_the_warped_one(
    store: ObjectStore, tmp_path: Path, offset: tuple[int, int]
) -> None:
    data = stack(height=100, width=120)
    store.put("scenes/a.tif", Path(write(tmp_path / "a.tif", data, driver="COG")))
    transform = ORIGIN @ Affine.translation(*offset)
    with store.gdal_env(), rasterio.open(store.gdal_path("scenes/a.tif")) as src:
        assert aligned_offset(src, "EPSG:32631", transform) == (offset[1], offset[0])
    plain = read_window(store, "scenes/a.tif", "EPSG:32631", transform, 50, 40)
    assert np.array_equal(plain, warped(store, "scenes/a.tif", "EPSG:32631", transform, 50, 40))


def test_a_scene_off_the_grid_by_half_a_pixel_or_in_another_crs_is_warped(store: ObjectStore, tmp_path: Path) -> None:
    store.put("scenes/a.tif", Path(write(tmp_path / "a.tif", stack(height=100, width=120), driver="COG")))
    with store.gdal_env(), rasterio.open(store.gdal_path("scenes/a.tif")) as src:
        assert aligned_offset(src, "EPSG:32631", ORIGIN @ Affine.translation(10.5, 20)) is None
        assert aligned_offset(src, "EPSG:32630", ORIGIN) is None
        assert aligned_offset(src, "EPSG:32631", ORIGIN @ Affine.scale(2)) is None


def test_real_scenes_read_plainly_equal_their_warped_windows(store: ObjectStore) -> None:
    for path in sorted(realdata("worldcereal-flanders-2019", "scenes").glob("*.tif"))[:5]:
        key = f"scenes/{path.name}"
        store.put(key, path)
        with rasterio.open(path) as src:
            crs, transform = str(src.crs), src.transform @ Affine.translation(-7, 5)
        plain = read_window(store, key, crs, transform, 48, 70)
        assert plain.any() and np.array_equal(plain, warped(store, key, crs, transform, 48, 70))
