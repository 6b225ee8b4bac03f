"""Field parcels: an owner's polygons that analyses predict a crop for."""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import aoi_geometry, area_ha
from cropai.db import FieldParcel, session_scope
from cropai.errors import InvalidInput

NAME_PROPERTIES = ("name", "field_name", "parcel_id", "id")


def add_fields(
    sessions: sessionmaker[Session], collection: dict[str, Any], owner_id: int | None = None
) -> list[int]:
    """Store every feature of a GeoJSON FeatureCollection (EPSG:4326 polygons) as the owner's
    fields; all or nothing: one bad feature refuses the whole upload, naming it."""
    if collection.get("type") != "FeatureCollection":
        raise InvalidInput(f"fields must be a GeoJSON FeatureCollection, got type {collection.get('type')!r}")
    parcels = []
    for number, feature in enumerate(collection.get("features") or []):
        try:
            geometry = aoi_geometry(feature)
        except InvalidInput as exc:
            raise InvalidInput(f"feature {number}: {exc}") from None
        properties = feature.get("properties") or {}
        name = next((str(properties[k]) for k in NAME_PROPERTIES if properties.get(k) is not None), f"field {number}")
        minx, miny, maxx, maxy = shapely.geometry.shape(geometry).bounds
        parcels.append(FieldParcel(
            owner_id=owner_id, name=name[:200], external_id=str(feature["id"]) if "id" in feature else None,
            properties=properties, geometry_geojson=geometry, area_ha=round(area_ha(geometry), 4),
            minx=minx, miny=miny, maxx=maxx, maxy=maxy,
        ))  # fmt: skip
    with session_scope(sessions) as session:
        session.add_all(parcels)
        session.flush()
        return [parcel.id for parcel in parcels]
