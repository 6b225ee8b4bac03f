"""Field parcels: an owner's polygons that analyses predict a crop for.

A field is for training (its properties may label a model's training data) or for reference
(its known crop, ``reference_label``, assesses maps; it never trains a model, so that an
assessment is not flattered by the model's own training data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import aoi_geometry, area_ha
from cropai.db import FieldParcel, FieldPurpose, FieldUpload, session_scope
from cropai.errors import InvalidInput
from cropai.legend import normalise_code

if TYPE_CHECKING:
    from cropai.parcels import LabelledParcels

NAME_PROPERTIES = ("name", "field_name", "parcel_id", "id")
MAX_NAMED = 10  # unknown field ids named in one message
MAX_REFERENCE_LABEL = 100  # characters, as the column holds


def add_fields(
    sessions: sessionmaker[Session],
    collection: dict[str, Any],
    owner_id: int | None = None,
    *,
    max_vertices: int | None = None,
    idempotency_key: str | None = None,
    purpose: FieldPurpose = FieldPurpose.training,
    label_property: str | None = None,
) -> list[int]:
    """Store every feature of a GeoJSON FeatureCollection (EPSG:4326 polygons) as the owner's
    fields and return their ids; all or nothing: one bad feature refuses the whole upload, naming it.

    Reference fields take their ``reference_label`` from each feature's ``label_property``
    (which every feature must have).

    With an ``idempotency_key`` the upload happens once per owner and key: a repeat (even one
    racing the first) stores nothing and returns the first upload's ids."""
    parcels = field_parcels(collection, owner_id, max_vertices, purpose, label_property)
    try:
        with session_scope(sessions) as session:
            session.add_all(parcels)
            session.flush()
            ids = [parcel.id for parcel in parcels]
            if idempotency_key is not None:
                session.add(FieldUpload(owner_id=owner_id, idempotency_key=idempotency_key, field_ids=ids))
                session.flush()
        return ids
    except IntegrityError:
        earlier = None if idempotency_key is None else uploaded_fields(sessions, owner_id, idempotency_key)
        if earlier is None:
            raise
        return earlier  # another request with this key committed first; this one's fields were rolled back


def labelled_fields(
    sessions: sessionmaker[Session], owner_id: int, label_property: str, field_ids: Sequence[int] | None = None
) -> LabelledParcels:
    """The owner's fields (only ``field_ids`` when given) as training parcels: their polygons in
    EPSG:4326 and the value of ``label_property`` of each (normalised, see ``normalise_code``).

    Fields without a value are left out and counted in ``dropped``; reference fields never
    train: without ``field_ids`` they are left out, named among them they are refused. Raises
    InvalidInput naming ids that are not the owner's fields or are reference fields, and a
    property no field has (listing those they have)."""
    # cropai.parcels reads files through pyogrio (and pandas): imported when fields become
    # training parcels, so that the API process starts without them.
    from cropai.parcels import WGS84, LabelledParcels

    query = select(FieldParcel).where(FieldParcel.owner_id == owner_id)
    if field_ids is not None:
        query = query.where(FieldParcel.id.in_(field_ids))
    else:
        query = query.where(FieldParcel.purpose == FieldPurpose.training)
    with sessions() as session:
        rows = session.scalars(query.order_by(FieldParcel.id)).all()
    unknown = sorted(set(field_ids or ()) - {row.id for row in rows})
    if unknown:
        raise InvalidInput(f"fields {_named(unknown)} are not among your fields: list yours with GET /fields")
    reference = [row.id for row in rows if row.purpose == FieldPurpose.reference]
    if reference:
        raise InvalidInput(
            f"fields {_named(reference)} are reference fields, kept for assessing maps: they never train a "
            "model; leave them out of field_ids"
        )
    if not rows:
        raise InvalidInput(
            "there are no fields to train on: upload labelled parcels with POST /fields first "
            "(reference fields never train)"
        )
    labels = [normalise_code(row.properties.get(label_property)) for row in rows]
    kept = [i for i, label in enumerate(labels) if label]
    if not kept:
        found = sorted({key for row in rows for key in row.properties})
        raise InvalidInput(
            f"no field has a value in the property {label_property!r}: the fields' properties are "
            f"{', '.join(map(repr, found)) or 'none'}; name the one that holds each crop code"
        )
    return LabelledParcels(
        f"your {len(rows)} fields (property {label_property!r})",
        WGS84,
        tuple(shapely.geometry.shape(rows[i].geometry_geojson) for i in kept),
        tuple(labels[i] for i in kept),
        dropped=len(rows) - len(kept),
    )


def _named(ids: Sequence[int]) -> str:
    return ", ".join(map(str, ids[:MAX_NAMED])) + (f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else "")


def uploaded_fields(sessions: sessionmaker[Session], owner_id: int | None, idempotency_key: str) -> list[int] | None:
    """The field ids an earlier upload with this key stored for the owner; None if there was none."""
    with sessions() as session:
        return session.scalar(
            select(FieldUpload.field_ids).where(
                FieldUpload.owner_id == owner_id, FieldUpload.idempotency_key == idempotency_key
            )
        )


def field_parcels(
    collection: dict[str, Any],
    owner_id: int | None,
    max_vertices: int | None = None,
    purpose: FieldPurpose = FieldPurpose.training,
    label_property: str | None = None,
) -> list[FieldParcel]:
    """The checked, unsaved parcels of a GeoJSON FeatureCollection; InvalidInput names the first bad feature."""
    if purpose == FieldPurpose.reference and not label_property:
        raise InvalidInput("reference fields need label_property: the property that holds each field's crop")
    if collection.get("type") != "FeatureCollection":
        raise InvalidInput(f"fields must be a GeoJSON FeatureCollection, got type {collection.get('type')!r}")
    parcels = []
    for number, feature in enumerate(collection.get("features") or []):
        # Counted before shapely sees the geometry: checking a huge polygon is the cost the cap avoids.
        vertices = vertex_count(feature)
        if max_vertices is not None and vertices > max_vertices:
            raise InvalidInput(
                f"feature {number} has {vertices} vertices: at most {max_vertices} per field "
                "(CROPAI_MAX_FIELD_VERTICES); simplify its outline"
            )
        try:
            geometry = aoi_geometry(feature)
        except InvalidInput as exc:
            raise InvalidInput(f"feature {number}: {exc}") from None
        properties = feature.get("properties") or {}
        name = next((str(properties[k]) for k in NAME_PROPERTIES if properties.get(k) is not None), f"field {number}")
        label = reference_label(properties, label_property, number, name) if purpose == FieldPurpose.reference else None
        minx, miny, maxx, maxy = shapely.geometry.shape(geometry).bounds
        parcels.append(
            FieldParcel(
                owner_id=owner_id,
                name=name[:200],
                external_id=str(feature["id"]) if "id" in feature else None,
                properties=properties,
                geometry_geojson=geometry,
                area_ha=round(area_ha(geometry), 4),
                minx=minx,
                miny=miny,
                maxx=maxx,
                maxy=maxy,
                purpose=purpose,
                reference_label=label,
            )
        )
    return parcels


def reference_label(properties: dict[str, Any], label_property: str | None, number: int, name: str) -> str:
    """A reference field's crop: its ``label_property`` as text; InvalidInput names a feature without one."""
    value = properties.get(label_property or "")
    text = "" if value is None or isinstance(value, dict | list) else str(value).strip()
    if not text:
        found = ", ".join(map(repr, properties)) or "none"
        raise InvalidInput(
            f"feature {number} ({name}) has no value in the property {label_property!r}: every reference field "
            f"needs its crop there (its properties are {found})"
        )
    if len(text) > MAX_REFERENCE_LABEL:
        raise InvalidInput(
            f"feature {number} ({name}): its {label_property!r} is longer than {MAX_REFERENCE_LABEL} characters"
        )
    return text


def vertex_count(geojson: Any) -> int:
    """The positions in a GeoJSON Feature's or geometry's coordinates (closing positions included)."""
    if not isinstance(geojson, dict):
        return 0
    if geojson.get("type") == "Feature":
        return vertex_count(geojson.get("geometry"))
    parts = geojson.get("geometries")
    count = sum(vertex_count(part) for part in parts) if isinstance(parts, list) else 0
    pending = [geojson.get("coordinates")]
    while pending:
        item = pending.pop()
        if not isinstance(item, list) or not item:
            continue
        if not isinstance(item[0], list):
            count += 1  # one position
        elif item[0] and isinstance(item[0][0], list):
            pending.extend(item)  # rings or polygons: look inside
        else:
            count += len(item)  # a ring (or line) of positions
    return count
