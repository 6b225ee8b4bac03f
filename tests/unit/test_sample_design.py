"""A stratified sample of a crop map: sized from the target error, every class sampled, repeatable."""

import json

import numpy as np
import pytest
from affine import Affine

from cropai.crops import SYNTHETIC_LEGEND
from cropai.errors import InvalidInput
from cropai.sample_design import design_sample

TRANSFORM = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_600_000.0)  # EPSG:32631, 10 m


def crop_map() -> np.ndarray:
    labels = np.zeros((300, 300), np.uint8)
    labels[:, :150] = 1  # winter wheat: half the map
    labels[:, 150:250] = 3  # maize
    labels[:, 250:] = 10  # grassland
    labels[:20, :20] = 0  # no data
    return labels


def test_every_mapped_class_is_a_stratum_with_at_least_the_minimum() -> None:
    design = design_sample(crop_map(), TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND, minimum_per_class=50)
    assert set(design.points_per_class) == {"winter_wheat", "maize", "grassland"}
    assert min(design.points_per_class.values()) >= 50
    assert len(design.points) == sum(design.points_per_class.values())
    labels = crop_map()
    assert all(labels[p.row, p.col] == p.map_class_id for p in design.points)


def test_a_tighter_target_error_draws_more_points() -> None:
    loose = design_sample(crop_map(), TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND, target_overall_se=0.02)
    tight = design_sample(crop_map(), TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND, target_overall_se=0.01)
    assert len(tight.points) > 2 * len(loose.points)


def test_the_same_seed_draws_the_same_points_and_they_leave_as_geojson_and_csv() -> None:
    first = design_sample(crop_map(), TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND, seed=3)
    assert first.points == design_sample(crop_map(), TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND, seed=3).points
    feature = json.loads(json.dumps(first.as_geojson()))["features"][0]
    lon, lat = feature["geometry"]["coordinates"]
    assert 2.9 < lon < 3.1 and 50.5 < lat < 50.6 and feature["properties"]["reference_class"] is None
    lines = first.as_csv().splitlines()
    assert lines[0] == "point_id,lon,lat,map_class,map_class_id,reference_class" and len(lines) == len(first.points) + 1


def test_a_class_too_small_for_its_points_is_refused_by_name() -> None:
    labels = crop_map()
    labels[100:105, 100:105] = 4  # 25 px of rapeseed
    with pytest.raises(InvalidInput, match=r"rapeseed \(25 px\)"):
        design_sample(labels, TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND, minimum_per_class=50)


def test_a_map_without_mapped_pixels_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no mapped pixel"):
        design_sample(np.zeros((10, 10), np.uint8), TRANSFORM, "EPSG:32631", SYNTHETIC_LEGEND)
