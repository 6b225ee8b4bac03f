"""Warnings an analysis carries about its model: synthetic-only, far from home, too long a window."""

from datetime import date

from cropai.model_scope import TrainingScope, distance_km, scope_warnings
from cropai.season import Season

BEAUCE = (1.55, 48.15, 1.69, 48.24)
SUMMER = (date(2025, 4, 1), date(2025, 9, 30))


def test_a_synthetic_only_model_is_always_flagged() -> None:
    warnings = scope_warnings(TrainingScope(Season(start_month=4, bins=6), synthetic_only=True), BEAUCE, SUMMER)
    assert len(warnings) == 1 and "synthetic scenes only" in warnings[0]


def test_an_aoi_far_from_the_training_region_is_flagged_with_its_distance() -> None:
    scope = TrainingScope(Season(start_month=4, bins=6), synthetic_only=False, region_bbox_wgs84=BEAUCE)
    assert scope_warnings(scope, (1.6, 48.2, 1.62, 48.21), SUMMER) == ()
    (far,) = scope_warnings(scope, (4.05, 50.74, 4.07, 50.75), SUMMER)  # Flemish Brabant
    assert "km from the model's training region" in far and "326 km" in far


def test_a_window_much_longer_than_the_season_is_flagged() -> None:
    scope = TrainingScope(Season(start_month=4, bins=6), synthetic_only=False)
    (longer,) = scope_warnings(scope, BEAUCE, (date(2025, 1, 1), date(2025, 12, 31)))
    assert "182 days longer than the model's season (2025-04-01 to 2025-09-30" in longer


def test_distance_between_boxes_is_zero_when_they_meet() -> None:
    assert distance_km(BEAUCE, (1.6, 48.2, 2.0, 48.5)) == 0.0
    assert 105 < distance_km((0.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 1.0)) < 115
