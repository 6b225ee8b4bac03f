import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box, shape

from cropai import sentinel2
from cropai.crops import CLASSES, CLASSES_BY_NAME
from cropai.errors import InvalidInput
from cropai.grid import grid_for_bbox
from cropai.sentinel2 import SCL
from cropai.synth import SyntheticSet, SynthSpec, make_parcels, rasterize_parcels, synthesize

BBOX = (1.600, 48.200, 1.620, 48.215)  # about 1.5 km x 1.7 km
SPEC = SynthSpec(BBOX, date(2025, 4, 1), date(2025, 9, 30), seed=3, revisit_days=20)


@pytest.fixture(scope="module")
def scene_set(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    return synthesize(SPEC, tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def clear_set(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    spec = replace(SPEC, mean_cloud_cover=0.0, partial_swath_probability=0.0, revisit_days=10)
    return synthesize(spec, tmp_path_factory.mktemp("clear"))


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_scenes_are_sentinel2_like_cogs(scene_set: SyntheticSet) -> None:
    assert len(scene_set.scenes) == 10  # 2025-04-01 .. 2025-09-30 every 20 days
    for scene in scene_set.scenes:
        is_cog, errors, _ = cog_validate(str(scene.path), quiet=True)
        assert is_cog, errors
        with rasterio.open(scene.path) as src:
            assert src.count == 11 and src.dtypes[0] == "uint16" and src.nodata == 0
            assert src.descriptions == (*sentinel2.BANDS, "SCL")
            assert src.crs.to_string() == "EPSG:32631" and src.res == (10.0, 10.0)
            assert src.tags()["ACQUISITION_DATETIME"] == scene.acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_labels_are_a_cog_with_the_class_colour_table(scene_set: SyntheticSet) -> None:
    assert cog_validate(str(scene_set.labels_path), quiet=True)[0]
    with rasterio.open(scene_set.labels_path) as src:
        assert src.dtypes[0] == "uint8"
        wheat = CLASSES_BY_NAME["winter_wheat"]
        assert src.colormap(1)[wheat.id][:3] == wheat.rgb


def test_same_seed_gives_the_same_files(scene_set: SyntheticSet, tmp_path: Path) -> None:
    again = synthesize(replace(SPEC, end=date(2025, 4, 30)), tmp_path)
    assert np.array_equal(read(again.scenes[0].path), read(scene_set.scenes[0].path))
    assert again.parcels_path.read_text() == scene_set.parcels_path.read_text()


def test_another_seed_gives_another_landscape() -> None:
    grid = grid_for_bbox(BBOX, 10.0)
    a = rasterize_parcels(make_parcels(grid, SPEC), grid)
    b = rasterize_parcels(make_parcels(grid, replace(SPEC, seed=4)), grid)
    assert not np.array_equal(a, b)


def test_a_farming_landscape_has_every_crop_and_non_crop_class() -> None:
    spec = SynthSpec((1.60, 48.20, 1.64, 48.23), date(2025, 4, 1), date(2025, 4, 2), seed=0)
    grid = grid_for_bbox(spec.bbox_wgs84, 10.0)
    present = {p.class_id for p in make_parcels(grid, spec)}
    crops = {c.id for c in CLASSES if c.is_crop}
    assert len(present & crops) >= 8
    assert present - crops, "no forest, water, built-up or grassland parcel"


def test_parcels_are_wgs84_polygons_matching_the_label_raster(scene_set: SyntheticSet) -> None:
    collection = json.loads(scene_set.parcels_path.read_text())
    labels = read(scene_set.labels_path)[0]
    with rasterio.open(scene_set.labels_path) as src:
        to_row_col = src.index
    area = box(*BBOX).buffer(0.001)
    for feature in collection["features"]:
        polygon = shape(feature["geometry"])
        assert area.contains(polygon)
        point = polygon.representative_point()
        # Label pixel at the parcel's inside point, located through the UTM grid.
        from rasterio.warp import transform

        xs, ys = transform("EPSG:4326", "EPSG:32631", [point.x], [point.y])
        row, col = to_row_col(xs[0], ys[0])
        assert labels[row, col] == feature["properties"]["class_id"]


def test_ndvi_follows_each_crops_season(clear_set: SyntheticSet) -> None:
    labels = read(clear_set.labels_path)[0]

    def mean_ndvi(crop: str, month: int) -> float:
        scene = next(s for s in clear_set.scenes if s.acquired_at.month == month)
        stack = read(scene.path).astype(float)
        red, nir = stack[2], stack[6]
        ndvi = (nir - red) / (nir + red)
        return float(ndvi[labels == CLASSES_BY_NAME[crop].id].mean())

    assert mean_ndvi("winter_wheat", 5) > mean_ndvi("winter_wheat", 8) + 0.3
    assert mean_ndvi("maize", 8) > mean_ndvi("maize", 5) + 0.3


def test_clouds_are_bright_and_flagged_in_scl(scene_set: SyntheticSet) -> None:
    cloudy = max(scene_set.scenes, key=lambda s: s.cloud_fraction)
    assert cloudy.cloud_fraction > 0.1
    stack = read(cloudy.path)
    thick = stack[-1] == SCL.CLOUD_HIGH_PROBABILITY
    clear = stack[-1] == SCL.VEGETATION
    assert stack[0][thick].mean() > 3 * stack[0][clear].mean()  # B02 brightness
    assert (stack[-1] == SCL.CLOUD_SHADOW).any()
    with rasterio.open(cloudy.path) as src:
        assert float(src.tags()["CLOUDY_PIXEL_PERCENTAGE"]) == pytest.approx(100 * cloudy.cloud_fraction, abs=0.01)


def test_partial_swath_is_nodata_in_every_band(tmp_path: Path) -> None:
    spec = replace(SPEC, end=date(2025, 4, 2), partial_swath_probability=1.0)
    scene = synthesize(spec, tmp_path).scenes[0]
    stack = read(scene.path)
    missing = stack[-1] == SCL.NO_DATA
    assert 0.1 < missing.mean() < 0.7
    assert (stack[:, missing] == 0).all() and (stack[:, ~missing] > 0).all()


def test_plain_geotiff_format_is_not_a_cog(tmp_path: Path) -> None:
    scene = synthesize(replace(SPEC, end=date(2025, 4, 2), file_format="gtiff"), tmp_path).scenes[0]
    assert not cog_validate(str(scene.path), quiet=True)[0]
    assert read(scene.path).shape[0] == 11


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": date(2025, 3, 1)}, "before start"),
        ({"bbox_wgs84": (0.0, 40.0, 2.0, 42.0)}, "pixels at 10 m"),
        ({"mean_cloud_cover": 1.5}, "mean_cloud_cover"),
        ({"revisit_days": 0}, "revisit_days"),
    ],
)
def test_bad_requests_are_refused_before_writing(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        synthesize(replace(SPEC, **change), tmp_path / "out")
    assert not (tmp_path / "out").exists()
