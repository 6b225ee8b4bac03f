"""Comparing two crop maps: the same map twice is identical; a relabelled patch, a changed
confidence, another grid or a field predicted otherwise is a difference that is counted and named."""

from pathlib import Path

import numpy as np
import pytest

from cropai.compare import compare_maps, field_changes
from cropai.cropmap import write_map
from cropai.crops import CLASSES_BY_NAME, SYNTHETIC_LEGEND
from cropai.grid import grid_for_bbox
from cropai.storage import LocalStore

AREA = (1.600, 48.200, 1.610, 48.206)  # about 740 x 670 m: 75 x 67 px at 10 m
MAIZE, WHEAT = CLASSES_BY_NAME["maize"], CLASSES_BY_NAME["winter_wheat"]


def put_map(
    store: LocalStore,
    folder: Path,
    key: str,
    *,
    patch: int = 0,
    confidence: int = 200,
    area: tuple[float, float, float, float] = AREA,
) -> str:
    """Maize everywhere but a ``patch`` x ``patch`` px square of winter wheat in the corner."""
    grid = grid_for_bbox(area, 10.0)
    labels = np.full(grid.shape, MAIZE.id, np.uint8)
    labels[:patch, :patch] = WHEAT.id
    path = folder / f"{key.replace('/', '-')}.tif"
    write_map(
        labels,
        np.full(grid.shape, confidence, np.uint8),
        grid,
        path,
        analysis_id=key,
        model="cropnet@1.0.0",
        legend=SYNTHETIC_LEGEND,
    )
    store.put(key, path)
    return key


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_the_same_map_twice_is_identical_with_equal_areas(store: LocalStore, tmp_path: Path) -> None:
    a, b = put_map(store, tmp_path, "a.tif", patch=5), put_map(store, tmp_path, "b.tif", patch=5)
    comparison = compare_maps(store, a, b, SYNTHETIC_LEGEND, {1: MAIZE.id}, {1: MAIZE.id})
    assert comparison.identical and comparison.reason is None and comparison.pixels_differing == 0
    wheat = next(c for c in comparison.classes if c.class_id == WHEAT.id)
    assert wheat.area_ha_a == wheat.area_ha_b == pytest.approx(25 * 0.01) and wheat.difference_ha == 0
    assert comparison.fields_changed == ()


def test_a_relabelled_patch_is_counted_in_pixels_and_hectares(store: LocalStore, tmp_path: Path) -> None:
    a, b = put_map(store, tmp_path, "a.tif"), put_map(store, tmp_path, "b.tif", patch=10)
    comparison = compare_maps(store, a, b, SYNTHETIC_LEGEND, {}, {})
    assert not comparison.identical and comparison.pixels_differing == 100
    by_name = {c.class_name: c for c in comparison.classes}
    assert by_name["winter_wheat"].difference_ha == pytest.approx(1.0)
    assert by_name["maize"].difference_ha == pytest.approx(-1.0)
    assert comparison.reason == "100 pixel(s) have a different class"


def test_a_changed_confidence_alone_makes_the_maps_differ(store: LocalStore, tmp_path: Path) -> None:
    a, b = put_map(store, tmp_path, "a.tif"), put_map(store, tmp_path, "b.tif", confidence=120)
    comparison = compare_maps(store, a, b, SYNTHETIC_LEGEND, {}, {})
    assert not comparison.identical and comparison.pixels_differing == 0
    assert comparison.reason is not None and "different confidence" in comparison.reason


def test_maps_on_different_grids_are_not_identical_and_say_why(store: LocalStore, tmp_path: Path) -> None:
    a = put_map(store, tmp_path, "a.tif")
    b = put_map(store, tmp_path, "b.tif", area=(1.600, 48.200, 1.605, 48.206))
    comparison = compare_maps(store, a, b, SYNTHETIC_LEGEND, {}, {})
    assert not comparison.identical and comparison.pixels_differing is None
    assert comparison.reason is not None and comparison.reason.startswith("the maps are on different grids")
    maize = next(c for c in comparison.classes if c.class_id == MAIZE.id)
    assert maize.area_ha_b < maize.area_ha_a  # each map's own area, from its own grid


def test_fields_whose_class_changed_are_named_by_class() -> None:
    changes = field_changes(
        {1: MAIZE.id, 2: WHEAT.id, 3: MAIZE.id}, {1: MAIZE.id, 2: MAIZE.id, 4: WHEAT.id}, SYNTHETIC_LEGEND
    )
    assert [(c.field_id, c.class_a, c.class_b) for c in changes] == [
        (2, "winter_wheat", "maize"),
        (3, "maize", None),
        (4, None, "winter_wheat"),
    ]
