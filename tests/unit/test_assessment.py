"""Assessing a crop map against reference data: labelled sample points of a stratified design,
and reference fields, on small generated maps whose truth is known."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from affine import Affine
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from cropai.assessment import ClassMap, ReferenceField, assess_fields, assess_sample, check_strata
from cropai.errors import InvalidInput
from cropai.legend import Legend, LegendClass
from cropai.reference_labels import LabelledPoint, read_sample_labels
from cropai.sample_design import design_sample

LEGEND = Legend(
    (
        LegendClass(1, "wheat", "#e6194b", ("1110",)),
        LegendClass(2, "maize", "#3cb44b", ("1200",)),
        LegendClass(3, "barley", "#ffe119", ("1500",)),
        LegendClass(4, "grass", "#4363d8", ("4000",)),
    )
)
UTM = "EPSG:32631"
TEN_METRES = Affine(10.0, 0.0, 400_000.0, 0.0, -10.0, 5_340_000.0)  # 0.01 ha pixels
ANALYSIS = uuid.uuid4()


def by_name(result: dict, name: str) -> dict:
    return next(c for c in result["per_class"] if c["name"] == name)


def test_the_area_intervals_of_repeated_samples_cover_the_true_areas_about_95_percent_of_the_time() -> None:
    """A map with 15 % of its pixels wrong and a class (grass) it never shows, sampled by 50
    independent stratified designs: each class's error-adjusted area interval should hold the
    true area in about 95 % of them."""
    rng = np.random.default_rng(11)
    truth = rng.choice([1, 2, 3, 4], size=(300, 300), p=[0.5, 0.3, 0.15, 0.05]).astype(np.uint8)
    wrong = rng.uniform(size=truth.shape) < 0.15
    mapped = np.where(wrong, rng.choice([1, 2, 3], size=truth.shape), truth).astype(np.uint8)
    class_map = ClassMap(mapped, TEN_METRES, UTM)
    true_ha = {c.name: float((truth == c.id).sum()) * 0.01 for c in LEGEND.classes}
    covered = []
    for seed in range(50):
        design = design_sample(mapped, TEN_METRES, UTM, LEGEND, target_overall_se=0.02, minimum_per_class=30, seed=seed)
        points = [
            LabelledPoint(p.point_id, p.lon, p.lat, p.map_class_id, int(truth[p.row, p.col])) for p in design.points
        ]
        result = assess_sample(points, class_map, LEGEND, ANALYSIS)
        for row in result["per_class"]:
            low, high = row["estimated_area_ha"]["ci95"]
            covered.append(low <= true_ha[row["name"]] <= high)
    assert len(covered) == 50 * 4
    assert 0.86 <= np.mean(covered) <= 1.0


@pytest.fixture
def two_class_sample() -> dict:
    """60 wheat and 40 maize pixels; 6 points in wheat (4 wheat, 2 maize seen) and 4 in maize
    (1 wheat, 3 maize): weights proportional to the points, so the estimates are the counts'."""
    labels = np.array([1] * 60 + [2] * 40, dtype=np.uint8).reshape(10, 10)
    seen = [(1, 1)] * 4 + [(1, 2)] * 2 + [(2, 1)] + [(2, 2)] * 3
    points = [LabelledPoint(i, 0.0, 0.0, stratum, label) for i, (stratum, label) in enumerate(seen, start=1)]
    return assess_sample(points, ClassMap(labels, TEN_METRES, UTM), LEGEND, ANALYSIS)


def test_the_confusion_matrix_counts_points_by_map_class_and_reference_class(two_class_sample: dict) -> None:
    assert [c["name"] for c in two_class_sample["classes"]] == ["wheat", "maize"]
    assert two_class_sample["confusion_matrix"] == [[4, 2], [1, 3]]
    assert np.array(two_class_sample["area_weighted_matrix"]) == pytest.approx(np.array([[0.4, 0.2], [0.1, 0.3]]))
    assert (two_class_sample["unit"], two_class_sample["sample_size"]) == ("points", 10)


def test_accuracies_and_f1_are_the_hand_computed_ones(two_class_sample: dict) -> None:
    wheat, maize = by_name(two_class_sample, "wheat"), by_name(two_class_sample, "maize")
    assert two_class_sample["overall_accuracy"]["value"] == pytest.approx(0.7)
    assert (wheat["users_accuracy"]["value"], wheat["producers_accuracy"]["value"]) == pytest.approx((2 / 3, 0.8))
    assert (maize["users_accuracy"]["value"], maize["producers_accuracy"]["value"]) == pytest.approx((0.75, 0.6))
    assert (wheat["f1"], maize["f1"]) == pytest.approx((8 / 11, 2 / 3))
    assert (wheat["mapped_area_ha"], wheat["estimated_area_ha"]["value"]) == pytest.approx((0.6, 0.5))


def test_a_class_seen_on_the_ground_but_never_mapped_has_no_users_accuracy_and_a_producers_of_zero() -> None:
    labels = np.array([1] * 60 + [2] * 40, dtype=np.uint8).reshape(10, 10)
    seen = [(1, 1)] * 4 + [(1, 4)] * 2 + [(2, 2)] * 4
    points = [LabelledPoint(i, 0.0, 0.0, stratum, label) for i, (stratum, label) in enumerate(seen, start=1)]
    grass = by_name(assess_sample(points, ClassMap(labels, TEN_METRES, UTM), LEGEND, ANALYSIS), "grass")
    assert grass["users_accuracy"] is None and grass["f1"] is None
    assert grass["producers_accuracy"]["value"] == 0.0
    assert (grass["mapped_area_ha"], grass["estimated_area_ha"]["value"]) == pytest.approx((0.0, 0.2))


def test_a_stratum_with_fewer_than_two_points_is_refused_by_name() -> None:
    labels = np.array([1] * 60 + [2] * 40, dtype=np.uint8).reshape(10, 10)
    points = [LabelledPoint(1, 0, 0, 1, 1), LabelledPoint(2, 0, 0, 1, 1), LabelledPoint(3, 0, 0, 2, 2)]
    with pytest.raises(InvalidInput, match="maize"):
        assess_sample(points, ClassMap(labels, TEN_METRES, UTM), LEGEND, ANALYSIS)


# --- the labelled design's file --------------------------------------------------------------


def split_map() -> tuple[ClassMap, np.ndarray]:
    """20 x 20 pixels: wheat in the west half, maize in the east."""
    labels = np.where(np.arange(20) < 10, 1, 2).astype(np.uint8)[None, :].repeat(20, axis=0)
    return ClassMap(labels, TEN_METRES, UTM), labels


def labelled_csv(labels: list[str]) -> bytes:
    design = design_sample(split_map()[1], TEN_METRES, UTM, LEGEND, target_overall_se=0.3, minimum_per_class=3, seed=1)
    lines = design.as_csv().splitlines()
    header = lines[0] + ",label"
    rows = [f"{line},{label}" for line, label in zip(lines[1:], labels, strict=False)]
    return "\n".join([header, *rows]).encode()


def test_labels_are_read_by_class_name_or_code_and_unlabelled_points_are_left_out() -> None:
    points = read_sample_labels(labelled_csv(["wheat", "1200", "", "MAIZE"]), LEGEND)
    assert [p.label_class_id for p in points] == [1, 2, 2]
    assert [p.point_id for p in points] == [1, 2, 4]


def test_labels_outside_the_legend_are_named_with_the_legends_classes() -> None:
    with pytest.raises(InvalidInput, match=r"'oats', 'rye' are not classes.*wheat \(codes 1110\)"):
        read_sample_labels(labelled_csv(["oats", "wheat", "rye"]), LEGEND)


def test_a_design_of_another_map_is_refused_naming_its_points() -> None:
    class_map, _ = split_map()
    points = read_sample_labels(labelled_csv(["wheat"] * 6), LEGEND)
    check_strata(points, class_map)  # drawn from this map: accepted
    flipped = ClassMap(3 - class_map.labels, TEN_METRES, UTM)
    with pytest.raises(InvalidInput, match="points 1, 2, 3, 4, 5, 6 do not lie on their map class"):
        check_strata(points, flipped)


def test_the_design_geojson_with_a_label_property_reads_as_the_csv_does() -> None:
    design = design_sample(split_map()[1], TEN_METRES, UTM, LEGEND, target_overall_se=0.3, minimum_per_class=3, seed=1)
    collection = design.as_geojson()
    for feature in collection["features"]:
        feature["properties"]["label"] = feature["properties"]["map_class"]
    points = read_sample_labels(json.dumps(collection).encode(), LEGEND)
    assert [(p.stratum_id, p.label_class_id) for p in points] == [(p.map_class_id,) * 2 for p in design.points]


# --- reference fields ------------------------------------------------------------------------


def field_over(field_id: int, cols: tuple[int, int], rows: tuple[int, int], label: str) -> ReferenceField:
    """A field covering whole pixels of the split map (columns and rows end-exclusive), in EPSG:4326."""
    x0, y0 = TEN_METRES * (cols[0], rows[0])
    x1, y1 = TEN_METRES * (cols[1], rows[1])
    return ReferenceField(field_id, transform_geom(UTM, "EPSG:4326", mapping(box(x0, y1, x1, y0))), label)


def test_each_reference_field_agrees_when_its_majority_map_class_is_its_label() -> None:
    class_map, _ = split_map()
    fields = [
        field_over(1, (2, 6), (2, 6), "wheat"),  # 16 wheat pixels: agrees
        field_over(2, (12, 16), (2, 6), "1110"),  # 16 maize pixels, labelled wheat by code
        field_over(3, (7, 11), (10, 12), "maize"),  # 6 wheat + 2 maize pixels, labelled maize
        field_over(4, (30, 34), (2, 6), "maize"),  # off the map: not assessed
    ]
    result = assess_fields(fields, class_map, LEGEND, ANALYSIS)
    assert result["fields"] == {
        "assessed": 3,
        "agreeing": 1,
        "agreement": pytest.approx(1 / 3),
        "disagreeing": [
            {"field_id": 2, "reference": "wheat", "predicted": "maize"},
            {"field_id": 3, "reference": "maize", "predicted": "wheat"},
        ],
    }
    assert result["confusion_matrix"] == [[16, 6], [16, 2]]  # rows map wheat, maize; columns reference
    assert (result["unit"], result["sample_size"], result["source"]) == ("pixels", 40, "fields")
    assert "not a probability sample" in result["note"]


def test_reference_labels_outside_the_legend_are_named() -> None:
    class_map, _ = split_map()
    with pytest.raises(InvalidInput, match="'oats' are not classes"):
        assess_fields([field_over(1, (2, 6), (2, 6), "oats")], class_map, LEGEND, ANALYSIS)


def test_a_map_class_without_reference_pixels_is_left_out_of_the_estimates_and_named() -> None:
    class_map, _ = split_map()
    result = assess_fields([field_over(1, (2, 6), (2, 6), "wheat")], class_map, LEGEND, ANALYSIS)
    maize = by_name(result, "maize")
    assert maize["users_accuracy"] is None and maize["producers_accuracy"] is None and maize["f1"] is None
    assert (
        maize["mapped_area_ha"] == pytest.approx(2.0) and "maize have fewer than 2 reference pixels" in result["note"]
    )
    assert result["overall_accuracy"]["value"] == pytest.approx(1.0)
