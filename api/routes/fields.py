"""Field parcels: upload a GeoJSON FeatureCollection, list, read and delete them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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
    visible_to,
)
from api.errors import field_error
from api.queries import intersecting, paged
from api.schemas import FeatureCollection, FieldsCreated
from cropai.config import Settings
from cropai.db import FieldParcel, FieldPurpose, User
from cropai.errors import InvalidInput
from cropai.fields import add_fields, uploaded_fields
from cropai.services import Services

router = APIRouter(prefix="/fields", tags=["fields"])


def field_feature(row: FieldParcel, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": row.id,
        "geometry": row.geometry_geojson,
        "properties": {
            "field_id": row.id,
            "name": row.name,
            "external_id": row.external_id,
            "area_ha": row.area_ha,
            "owner_id": row.owner_id,
            "purpose": row.purpose.value,
            "reference_label": row.reference_label,
            **extra,
        },
    }


# The body is parsed here, in the thread pool, not by FastAPI on the event loop: a large upload
# would otherwise hold every other request up while it is read. This documents what it takes.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": FeatureCollection.model_json_schema(),
            }
        },
    }
}
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="any unique string, e.g. a UUID: repeating an upload with the same key stores nothing new "
        "and answers with the fields the first one stored",
    ),
]
Purpose = Annotated[
    FieldPurpose,
    Query(description="training: may label a model's training data; reference: assesses maps, never trains"),
]
LabelProperty = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="reference fields: the property that holds each field's crop"),
]


@router.post(
    "",
    response_model=FieldsCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Upload field parcels",
    openapi_extra=UPLOAD_BODY,
)
async def upload_fields(
    request: Request,
    user: Submitter,
    services: ServicesDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
    purpose: Purpose = FieldPurpose.training,
    label_property: LabelProperty = None,
) -> dict:
    """All or nothing: one invalid feature refuses the upload, naming the feature.

    With ``purpose=reference`` the fields are kept for assessing maps: each feature's
    ``label_property`` is its known crop (a class name or code of the models' legends), and
    they never train a model."""
    if purpose == FieldPurpose.reference and label_property is None:
        raise field_error(("query", "label_property"), "reference fields need the property that holds their crop")
    if idempotency_key is not None:
        earlier = await run_in_threadpool(uploaded_fields, services.sessions, user.id, idempotency_key)
        if earlier is not None:
            return {"ids": earlier, "count": len(earlier)}
    body = await request.body()  # at most CROPAI_MAX_REQUEST_BYTES: the body limit stops longer ones
    ids = await run_in_threadpool(
        _store_upload, body, services, settings, user.id, idempotency_key, purpose, label_property
    )
    return {"ids": ids, "count": len(ids)}


def _store_upload(
    body: bytes,
    services: Services,
    settings: Settings,
    owner_id: int,
    idempotency_key: str | None,
    purpose: FieldPurpose,
    label_property: str | None,
) -> list[int]:
    try:
        collection = FeatureCollection.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False, include_input=False)]
        ) from None
    if collection.type != "FeatureCollection":
        raise field_error(("body", "type"), f'expected "FeatureCollection", got {collection.type!r}')
    if not collection.features:
        raise field_error(("body", "features"), "the FeatureCollection has no features")
    if len(collection.features) > settings.max_fields_per_upload:
        raise field_error(
            ("body", "features"),
            f"{len(collection.features)} features: at most "
            f"{settings.max_fields_per_upload} per upload (CROPAI_MAX_FIELDS_PER_UPLOAD)",
        )
    try:
        features = {"type": collection.type, "features": collection.features}  # no copy of a large body
        return add_fields(
            services.sessions,
            features,
            owner_id,
            max_vertices=settings.max_field_vertices,
            idempotency_key=idempotency_key,
            purpose=purpose,
            label_property=label_property,
        )
    except InvalidInput as exc:
        raise field_error(("body", "features"), str(exc)) from None


@router.get("", summary="List field parcels as a GeoJSON FeatureCollection")
def list_fields(
    user: CurrentUser,
    session: SessionDep,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in degrees; fields that intersect it")] = None,
    purpose: Annotated[FieldPurpose | None, Query(description="only training or only reference fields")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    query = intersecting(select(FieldParcel).where(visible_to(user, FieldParcel.owner_id)), FieldParcel, bbox)
    if purpose is not None:
        query = query.where(FieldParcel.purpose == purpose)
    rows, total = paged(session, query, limit, offset, FieldParcel.id)
    return {
        "type": "FeatureCollection",
        "features": [field_feature(r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


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
