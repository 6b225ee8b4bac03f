"""Analysis rows: creating a request, reading it back for its run, storing its results.

Every write is idempotent: a rerun replaces an analysis' class statistics and
field predictions instead of adding to them. Field predictions go in with
PostgreSQL's COPY when the catalogue is PostgreSQL (thousands of fields per AOI).
Each write waits out a short database outage (``retry_transient``) rather than
failing an analysis whose batches are still running.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import shapely
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cropai.crops import SYNTHETIC_LEGEND
from cropai.db import (
    Analysis,
    AnalysisClassStat,
    FieldParcel,
    FieldPrediction,
    ModelVersion,
    Scene,
    retry_transient,
    session_scope,
)
from cropai.errors import InvalidInput, InvalidRequestField
from cropai.legend import Legend

if TYPE_CHECKING:  # the API writes requests without loading the raster stack
    from cropai.cropmap import CropMap

FIELD_PREDICTION_COLUMNS = (
    "analysis_id",
    "field_id",
    "class_id",
    "class_name",
    "share",
    "mean_confidence",
    "pixel_count",
    "gap_filled_share",
    "insufficient_evidence",
)


def aoi_geometry(geojson: dict[str, Any]) -> dict[str, Any]:
    """The (Multi)Polygon of a GeoJSON geometry, Feature or one-feature FeatureCollection, checked."""
    geometry = geojson
    if geojson.get("type") == "FeatureCollection":
        features = geojson.get("features") or []
        if len(features) != 1:
            raise InvalidInput(f"AOI FeatureCollection has {len(features)} features: expected exactly 1")
        geometry = features[0].get("geometry") or {}
    elif geojson.get("type") == "Feature":
        geometry = geojson.get("geometry") or {}
    try:
        shape = shapely.geometry.shape(geometry)
    except Exception as exc:
        raise InvalidInput(f"AOI is not valid GeoJSON: {exc}") from None
    if shape.geom_type not in ("Polygon", "MultiPolygon") or shape.is_empty:
        raise InvalidInput(f"AOI is a {shape.geom_type}: expected a Polygon or MultiPolygon (EPSG:4326)")
    if not shape.is_valid:
        raise InvalidInput(f"AOI polygon is invalid ({shapely.is_valid_reason(shape)})")
    checked: dict[str, Any] = shapely.geometry.mapping(shape)
    return checked


@cache
def _wgs84() -> Any:
    from pyproj import Geod  # loaded on first use: the API process stays smaller until it needs it

    return Geod(ellps="WGS84")


def area_ha(geometry: dict[str, Any]) -> float:
    """Geodesic area of a lon/lat (Multi)Polygon in hectares."""
    return abs(float(_wgs84().geometry_area_perimeter(shapely.geometry.shape(geometry))[0])) / 10_000


def check_dates(start: date, end: date) -> None:
    """A date window must not end before it starts (an error naming ``end_date``)."""
    if end < start:
        raise InvalidRequestField("end_date", f"the window ends ({end}) before it starts ({start})")


@retry_transient
def create_analysis(
    sessions: sessionmaker[Session],
    /,
    aoi_geojson: dict[str, Any],
    start: date,
    end: date,
    model_ref: str,
    owner_id: int | None = None,
    name: str = "",
    options: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> uuid.UUID:
    """Write a queued analysis request and return its id.

    ``idempotency_key`` is unique per owner: a second request with the same key is refused
    by the database (IntegrityError), so the caller can hand back the first one. (Without a
    key, a retry after a commit whose answer was lost with the connection adds a second row.)"""
    check_dates(start, end)
    geometry = aoi_geometry(aoi_geojson)
    minx, miny, maxx, maxy = shapely.geometry.shape(geometry).bounds
    with session_scope(sessions) as session:
        analysis = Analysis(
            owner_id=owner_id,
            name=name,
            aoi_geojson=geometry,
            aoi_area_ha=round(area_ha(geometry), 4),
            minx=minx,
            miny=miny,
            maxx=maxx,
            maxy=maxy,
            start_date=start,
            end_date=end,
            model_ref=model_ref,
            options=options or {},
            idempotency_key=idempotency_key,
        )
        session.add(analysis)
        session.flush()
        return analysis.id


# Options of a rerun that repeats a completed analysis: which one, and the inputs it pins.
RERUN_OF = "rerun_of"
PINNED = "pinned"


class MissingInputs(InvalidInput):
    """A completed analysis cannot be repeated: an input it recorded is no longer in the catalogue."""


@dataclass(frozen=True)
class PinnedScene:
    """One exact scene version an analysis must read (as ``Analysis.input_scenes`` records it)."""

    scene_id: str
    version: int
    content_hash: str  # SHA-256 of the ingested file: it finds this very version

    def describe(self) -> str:
        return f"{self.scene_id} v{self.version} (content {self.content_hash[:16]})"

    def as_record(self) -> dict[str, Any]:
        return {"scene_id": self.scene_id, "version": self.version, "content_hash": self.content_hash}

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> PinnedScene:
        return cls(str(record["scene_id"]), int(record["version"]), str(record["content_hash"]))


def catalogued_scenes(sessions: sessionmaker[Session], pins: Sequence[PinnedScene]) -> dict[str, Scene]:
    """The catalogued Scene rows of the pinned versions, by content hash; a pin that is no longer
    catalogued is a :class:`MissingInputs` naming every such version."""
    hashes = [pin.content_hash for pin in pins]
    with sessions() as session:
        found = {row.content_hash: row for row in session.scalars(select(Scene).where(Scene.content_hash.in_(hashes)))}
    missing = [pin.describe() for pin in pins if pin.content_hash not in found]
    if missing:
        raise MissingInputs(
            f"{len(missing)} scene version(s) the analysis read are no longer in the catalogue: "
            f"{', '.join(missing)}; ingest them again or submit a new analysis on the current scenes"
        )
    return found


def create_rerun(sessions: sessionmaker[Session], source_id: uuid.UUID) -> uuid.UUID:
    """A new queued analysis repeating a completed one with the inputs it recorded: its owner, AOI,
    window and options, its resolved model version and its exact scene versions (``options["pinned"]``),
    with ``options["rerun_of"]`` naming it. Two runs on the same inputs give the same map.

    :class:`MissingInputs` when its model version or one of its scene versions is gone."""
    with sessions() as session:
        source = session.get_one(Analysis, source_id)
        model = session.get(ModelVersion, source.model_version_id) if source.model_version_id is not None else None
        if model is None or source.input_scenes is None:
            raise MissingInputs(
                f"analysis {source_id} has no recorded model version or scenes to repeat "
                "(its model version was deleted?): submit a new analysis instead"
            )
        pins = [PinnedScene.of_record(record) for record in source.input_scenes]
        catalogued_scenes(sessions, pins)  # refused now, not after a flow run started
        options = {k: v for k, v in source.options.items() if k not in (PINNED, RERUN_OF)}
        pinned = {"model_version_id": model.id, "scenes": [pin.as_record() for pin in pins]}
        return create_analysis(
            sessions,
            source.aoi_geojson,
            source.start_date,
            source.end_date,
            f"{model.name}@{model.version}",
            owner_id=source.owner_id,
            name=(f"{source.name} (rerun)" if source.name else f"rerun of {source_id}")[:200],
            options={**options, PINNED: pinned, RERUN_OF: str(source_id)},
        )


@dataclass(frozen=True)
class AnalysisRequest:
    """An analysis as its run needs it, read from its row once per run: the AOI (GeoJSON
    (Multi)Polygon, EPSG:4326), the date window, the model asked for, the owner and the options."""

    analysis_id: uuid.UUID
    aoi_geojson: dict[str, Any]
    start: date
    end: date
    model_ref: str  # as asked, e.g. "cropnet@latest"
    owner_id: int | None = None  # None: the fields without an owner are predicted
    max_cloud_fraction: float | None = None  # scenes cloudier than this (0..1) are left out
    batch_pixels: int | None = None  # core pixels per batch, when not the default
    pinned_scenes: tuple[PinnedScene, ...] = ()  # a rerun's exact scene versions; none: the latest ones

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The AOI's (minx, miny, maxx, maxy) in degrees, as the row's indexed bbox columns hold them."""
        minx, miny, maxx, maxy = shapely.geometry.shape(self.aoi_geojson).bounds
        return float(minx), float(miny), float(maxx), float(maxy)


def read_request(sessions: sessionmaker[Session], analysis_id: uuid.UUID) -> AnalysisRequest:
    with sessions() as session:
        row = session.get_one(Analysis, analysis_id)
        return AnalysisRequest(
            analysis_id=row.id,
            aoi_geojson=row.aoi_geojson,
            start=row.start_date,
            end=row.end_date,
            model_ref=row.model_ref,
            owner_id=row.owner_id,
            max_cloud_fraction=row.options.get("max_cloud_fraction"),
            batch_pixels=row.options.get("batch_pixels"),
            pinned_scenes=tuple(
                PinnedScene.of_record(record) for record in (row.options.get(PINNED) or {}).get("scenes", [])
            ),
        )


def owner_fields(sessions: sessionmaker[Session], request: AnalysisRequest) -> list[tuple[int, dict[str, Any]]]:
    """The owner's field parcels that intersect the AOI, as (id, GeoJSON geometry)."""
    aoi = shapely.geometry.shape(request.aoi_geojson)
    minx, miny, maxx, maxy = request.bounds
    with sessions() as session:
        rows = session.scalars(
            select(FieldParcel).where(
                FieldParcel.owner_id.is_(None)
                if request.owner_id is None
                else FieldParcel.owner_id == request.owner_id,
                FieldParcel.maxx >= minx,
                FieldParcel.minx <= maxx,
                FieldParcel.maxy >= miny,
                FieldParcel.miny <= maxy,
            )
        ).all()
    return [
        (row.id, row.geometry_geojson) for row in rows if shapely.geometry.shape(row.geometry_geojson).intersects(aoi)
    ]


@retry_transient
def save_results(sessions: sessionmaker[Session], /, analysis_id: uuid.UUID, cropmap: CropMap) -> None:
    """Replace the analysis' class statistics and field predictions with these."""
    with session_scope(sessions) as session:
        session.execute(delete(AnalysisClassStat).where(AnalysisClassStat.analysis_id == analysis_id))
        session.execute(delete(FieldPrediction).where(FieldPrediction.analysis_id == analysis_id))
        if cropmap.classes:
            session.execute(
                insert(AnalysisClassStat),
                [
                    {
                        "analysis_id": analysis_id,
                        "class_id": c.class_id,
                        "class_name": c.class_name,
                        "pixel_count": c.pixel_count,
                        "area_ha": c.area_ha,
                        "low_evidence_pixels": c.low_evidence_pixels,
                    }
                    for c in cropmap.classes
                ],
            )
        rows = [
            (
                analysis_id,
                f.field_id,
                f.class_id,
                f.class_name,
                f.share,
                f.mean_confidence,
                f.pixel_count,
                f.gap_filled_share,
                f.insufficient_evidence,
            )
            for f in cropmap.fields
        ]
        if rows and session.get_bind().dialect.name == "postgresql":
            _copy_rows(session, "field_predictions", FIELD_PREDICTION_COLUMNS, rows)
        elif rows:
            session.execute(
                insert(FieldPrediction), [dict(zip(FIELD_PREDICTION_COLUMNS, row, strict=True)) for row in rows]
            )


def _copy_rows(session: Session, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Bulk insert with COPY through the session's own psycopg connection (same transaction)."""
    import psycopg

    connection = session.connection()
    driver = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.OperationalError as exc:
        # COPY bypasses SQLAlchemy: drop the connection and raise as SQLAlchemy would, so
        # that the write is retried on a fresh connection.
        connection.invalidate(exc)
        raise OperationalError(statement, None, exc, connection_invalidated=True) from exc


def model_legend(session: Session, model_version_id: int | None) -> Legend:
    """The legend of the model version an analysis ran (the synthetic one before it ran)."""
    row = session.get(ModelVersion, model_version_id) if model_version_id is not None else None
    return Legend.of_contract(row.contract) if row is not None else SYNTHETIC_LEGEND
