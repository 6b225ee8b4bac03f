"""Field parcels: upload a GeoJSON FeatureCollection, list, read and delete them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from api.deps import (
    CurrentUser,
    Limit,
    Offset,
    RowId,
    ServicesDep,
    SessionDep,
    SettingsDep,
    Submitter,
    can_see,
    sees_everything,
)
from api.errors import field_error
from api.queries import intersecting, paged
from api.schemas import FeatureCollection, FieldsCreated
from cropai.db import FieldParcel, User
from cropai.errors import InvalidInput
from cropai.fields import add_fields

router = APIRouter(prefix="/fields", tags=["fields"])


def field_feature(row: FieldParcel, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Feature", "id": row.id, "geometry": row.geometry_geojson,
        "properties": {"field_id": row.id, "name": row.name, "external_id": row.external_id,
                       "area_ha": row.area_ha, "owner_id": row.owner_id, **extra},
    }  # fmt: skip


@router.post("", response_model=FieldsCreated, status_code=status.HTTP_201_CREATED, summary="Upload field parcels")
def upload_fields(body: FeatureCollection, user: Submitter, services: ServicesDep, settings: SettingsDep) -> dict:
    """All or nothing: one invalid feature refuses the upload, naming the feature."""
    if body.type != "FeatureCollection":
        raise field_error(("body", "type"), f'expected "FeatureCollection", got {body.type!r}')
    if not body.features:
        raise field_error(("body", "features"), "the FeatureCollection has no features")
    if len(body.features) > settings.max_fields_per_upload:
        raise field_error(("body", "features"), f"{len(body.features)} features: at most "
                          f"{settings.max_fields_per_upload} per upload (CROPAI_MAX_FIELDS_PER_UPLOAD)")  # fmt: skip
    try:
        ids = add_fields(services.sessions, body.model_dump(), user.id)
    except InvalidInput as exc:
        raise field_error(("body", "features"), str(exc)) from None
    return {"ids": ids, "count": len(ids)}


def _visible(user: User):  # noqa: ANN202 - a SQL condition
    return true() if sees_everything(user) else FieldParcel.owner_id == user.id


@router.get("", summary="List field parcels as a GeoJSON FeatureCollection")
def list_fields(
    user: CurrentUser,
    session: SessionDep,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in degrees; fields that intersect it")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    query = intersecting(select(FieldParcel).where(_visible(user)), FieldParcel, bbox)
    rows, total = paged(session, query, limit, offset, FieldParcel.id)
    return {"type": "FeatureCollection", "features": [field_feature(r) for r in rows],
            "total": total, "limit": limit, "offset": offset}  # fmt: skip


@router.get("/{field_id}", summary="Read one field parcel as a GeoJSON Feature")
def read_field(field_id: RowId, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    return field_feature(_field(session, user, field_id))


@router.delete("/{field_id}", status_code=204, summary="Delete a field parcel and its predictions")
def delete_field(field_id: RowId, user: Submitter, session: SessionDep) -> None:
    session.delete(_field(session, user, field_id))
    session.commit()


def _field(session: Session, user: User, field_id: int) -> FieldParcel:
    row = session.get(FieldParcel, field_id)
    if row is None or not can_see(user, row.owner_id):
        raise HTTPException(404, f"no field {field_id}")  # another owner's field is not there for you
    return row
