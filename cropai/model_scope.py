"""How far an analysis is from what its model learnt, said as warnings on the result.

A model is only as good as its training data is like the scene it maps: the default
model never saw a real scene (on real Sentinel-2 seasons it is right on about a
quarter of the pixels), and a model trained on one region's fields and calendar
transfers poorly to another's. Nothing here refuses an analysis; the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from cropai.grid import BBox
from cropai.season import Season

FAR_KM = 300.0  # beyond this from the training region, crops, calendars and soils differ
EARTH_RADIUS_KM = 6371.0
LONGER_THAN_SEASON_DAYS = 31


@dataclass(frozen=True)
class TrainingScope:
    """What a model version learnt from, as its catalogue row records it."""

    season: Season
    synthetic_only: bool | None = None  # None: the version does not say
    region_bbox_wgs84: BBox | None = None

    @classmethod
    def of_record(cls, contract: dict[str, Any], training: dict[str, Any]) -> TrainingScope:
        region = training.get("region_bbox_wgs84")
        return cls(
            Season.of_contract(contract),
            training.get("synthetic_only"),
            (float(region[0]), float(region[1]), float(region[2]), float(region[3])) if region else None,
        )


def scope_warnings(scope: TrainingScope, aoi_bounds: BBox, window: tuple[date, date]) -> tuple[str, ...]:
    """The warnings an analysis of ``aoi_bounds`` (EPSG:4326) over ``window`` carries."""
    warnings = []
    if scope.synthetic_only:
        warnings.append(
            "the model was trained on synthetic scenes only: on real Sentinel-2 scenes its classes are mostly "
            "wrong; train a model on labelled parcels of your region (cropai train --fields)"
        )
    if scope.region_bbox_wgs84 is not None:
        distance = distance_km(aoi_bounds, scope.region_bbox_wgs84)
        if distance > FAR_KM:
            warnings.append(
                f"the AOI is {distance:,.0f} km from the model's training region (bbox "
                f"{[round(v, 3) for v in scope.region_bbox_wgs84]}): crops, calendars and soils may differ"
            )
    first, last = scope.season.window(scope.season.year_of(*window))
    extra = (max(first, window[0]) - window[0]).days + (window[1] - min(last, window[1])).days
    if extra > LONGER_THAN_SEASON_DAYS:
        warnings.append(
            f"the date window {window[0]} to {window[1]} is {extra} days longer than the model's season "
            f"({first} to {last}, {scope.season.describe()}): scenes outside it are not read"
        )
    return tuple(warnings)


def distance_km(a: BBox, b: BBox) -> float:
    """Great-circle distance between the nearest points of two boxes (0 when they meet)."""
    (xa, xb), (ya, yb) = _nearest(a[0], a[2], b[0], b[2]), _nearest(a[1], a[3], b[1], b[3])
    return _haversine((xa, ya), (xb, yb))


def _nearest(low_a: float, high_a: float, low_b: float, high_b: float) -> tuple[float, float]:
    """Along one axis, the closest coordinates of two intervals."""
    if high_a < low_b:
        return high_a, low_b
    if low_a > high_b:
        return low_a, high_b
    middle = (max(low_a, low_b) + min(high_a, high_b)) / 2
    return middle, middle


def _haversine(p: tuple[float, float], q: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*p, *q))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
