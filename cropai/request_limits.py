"""The limits an analysis request keeps, whoever submits it (the API, ``cropai analyze``).

Each refusal is an :class:`InvalidRequestField` naming the field it is about, with a
message that says what to change; the limits come from ``Settings``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import shapely

from cropai.analysis_records import aoi_geometry, area_ha, check_dates
from cropai.config import Settings
from cropai.errors import InvalidInput, InvalidRequestField


def checked_request(settings: Settings, aoi: dict[str, Any], start: date, end: date) -> dict[str, Any]:
    """The AOI's (Multi)Polygon (GeoJSON, EPSG:4326) once the AOI and the date window keep the limits."""
    geometry = checked_aoi(aoi, settings)
    check_window(start, end, settings)
    return geometry


def checked_aoi(aoi: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A valid lon/lat (Multi)Polygon of at most ``max_aoi_vertices`` vertices and ``max_aoi_km2``."""
    try:
        geometry = aoi_geometry(aoi)
    except InvalidInput as exc:
        raise InvalidRequestField("aoi", str(exc)) from None
    shape = shapely.geometry.shape(geometry)
    minx, miny, maxx, maxy = shape.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidRequestField(
            "aoi",
            "coordinates are outside longitude -180..180 / latitude -90..90: "
            "give the AOI in EPSG:4326 (lon, lat), not a projected CRS",
        )
    vertices = int(shapely.get_num_coordinates(shape))
    if vertices > settings.max_aoi_vertices:
        raise InvalidRequestField(
            "aoi", f"{vertices} vertices: at most {settings.max_aoi_vertices} (simplify the outline)"
        )
    km2 = area_ha(geometry) / 100
    if km2 > settings.max_aoi_km2:
        raise InvalidRequestField(
            "aoi", f"covers {km2:,.0f} km²: at most {settings.max_aoi_km2:,.0f} km² per analysis (split the area)"
        )
    return geometry


def check_window(start: date, end: date, settings: Settings) -> None:
    """A window that starts before it ends and spans at most ``max_window_days`` days."""
    check_dates(start, end)
    days = (end - start).days + 1
    if days > settings.max_window_days:
        raise InvalidRequestField("end_date", f"the window spans {days} days: at most {settings.max_window_days}")
