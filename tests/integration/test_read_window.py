"""Scene windows on an analysis grid, from either store, including scenes in another CRS."""

from pathlib import Path

import numpy as np
from affine import Affine

from cropai.raster import read_window
from cropai.storage import ObjectStore
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
