"""The catalogue: engine, sessions and the typed tables of Crop AI.

One schema serves SQLite (embedded default) and PostgreSQL (production); Alembic
migrations in ``cropai/migrations`` create it on both. Geometry stays portable:
GeoJSON (EPSG:4326) in a JSON column plus an indexed bounding box
(``minx, miny, maxx, maxy`` in degrees) for coarse spatial filtering; exact
tests are done with shapely.
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    create_engine,
    event,
    false,
    make_url,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from cropai.config import Settings
from cropai.errors import ServiceUnavailable

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_PACKAGE = "cropai:migrations"

log = logging.getLogger(__name__)

# Stable constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive time is taken to be UTC already (SQLite hands stored times back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}  # noqa: RUF012 - read by SQLAlchemy as declared


def _enum_column(enum_cls: type[enum.Enum]) -> Enum:
    """A portable enum: a short VARCHAR holding the member's value."""
    return Enum(
        enum_cls,
        native_enum=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class BBoxColumns:
    """Bounding box in EPSG:4326 degrees; each table indexes it as ``ix_<table>_bbox``."""

    minx: Mapped[float] = mapped_column(Float)
    miny: Mapped[float] = mapped_column(Float)
    maxx: Mapped[float] = mapped_column(Float)
    maxy: Mapped[float] = mapped_column(Float)


def _bbox_index(table: str) -> Index:
    return Index(f"ix_{table}_bbox", "minx", "miny", "maxx", "maxy")


class Role(enum.StrEnum):
    admin = "admin"
    analyst = "analyst"
    viewer = "viewer"


class AnalysisStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class TrainingStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"


class RunStatus(enum.StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    hashed_password: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum_column(Role), default=Role.analyst)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Raised when the account's password or activity changes: every token, refresh
    # token and admin-panel session carries the version it was issued under and dies with it.
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")


class ApiKey(Base):
    """A machine credential; only a hash of the secret is kept, the prefix identifies it in lists."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")  # its owner's, when made


class RefreshToken(Base):
    """One issued refresh token, by its JWT id. Each refresh spends the token and issues the
    next of its family; spending one twice (a stolen copy) revokes the whole family."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class FieldUpload(Base):
    """A field upload made with an Idempotency-Key: repeating it returns these fields again."""

    __tablename__ = "field_uploads"
    __table_args__ = (UniqueConstraint("owner_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    field_ids: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IngestRun(Base):
    """One run of the ingestion flow and what became of the files it found."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    source: Mapped[str] = mapped_column(String(1000))
    status: Mapped[RunStatus] = mapped_column(_enum_column(RunStatus), default=RunStatus.running)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    found: Mapped[int] = mapped_column(default=0)
    ingested: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    # [{"file": ..., "reason": ..., "quarantine_key": ...}, ...]
    rejections: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None]  # written by the flow run's process while it lives


class Scene(BBoxColumns, Base):
    """A satellite scene stored as a COG under ``scenes/``.

    ``scene_id`` is the provider's id; a changed file with the same id becomes a new
    ``version`` instead of overwriting the old one. ``content_hash`` (SHA-256 of the
    ingested file) makes ingestion idempotent across sources.
    """

    __tablename__ = "scenes"
    __table_args__ = (UniqueConstraint("scene_id", "version"), _bbox_index("scenes"))

    id: Mapped[int] = mapped_column(primary_key=True)
    scene_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(default=1)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    object_key: Mapped[str] = mapped_column(String(500), unique=True)
    source_uri: Mapped[str] = mapped_column(String(1000))
    platform: Mapped[str] = mapped_column(String(32), default="")
    # Provenance (cropai.provenance): None where the source does not say.
    product_id: Mapped[str | None] = mapped_column(String(100))  # ESA product name, without .SAFE
    mgrs_tile: Mapped[str | None] = mapped_column(String(5), index=True)  # "29UNU"
    relative_orbit: Mapped[int | None] = mapped_column(Integer)
    processing_baseline: Mapped[str | None] = mapped_column(String(5))  # "04.00"
    # The offset (digital numbers) taken off the source's pixels to reach the stored radiometry: -1000 or 0.
    radiometric_offset: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    acquired_at: Mapped[datetime] = mapped_column(index=True)
    crs: Mapped[str] = mapped_column(String(64))
    resolution_m: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bands: Mapped[list[Any]] = mapped_column()
    cloud_fraction: Mapped[float | None] = mapped_column(Float)
    footprint_geojson: Mapped[dict[str, Any]] = mapped_column()
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    ingest_run_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_runs.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A registered model: weights under ``models/{name}/{version}/`` plus its input contract."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(50))
    format: Mapped[str] = mapped_column(String(20))  # "state_dict" or "torchscript"
    object_prefix: Mapped[str] = mapped_column(String(500))
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    contract: Mapped[dict[str, Any]] = mapped_column()  # bands, time bins, normalisation, classes
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    training: Mapped[dict[str, Any]] = mapped_column(default=dict)  # seed, data, hyper-parameters
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Analysis(BBoxColumns, Base):
    """A request to map crops in an AOI over a date window with one model version."""

    __tablename__ = "analyses"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        Index("ix_analyses_owner_id_created_at", "owner_id", "created_at"),
        _bbox_index("analyses"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[AnalysisStatus] = mapped_column(
        _enum_column(AnalysisStatus), default=AnalysisStatus.queued, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    aoi_geojson: Mapped[dict[str, Any]] = mapped_column()
    aoi_area_ha: Mapped[float] = mapped_column(Float)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    model_ref: Mapped[str] = mapped_column(String(160))  # as asked, e.g. "cropnet@latest"
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    # 1 for the first flow run; a rerun in place adds one (Prefect's idempotency key per attempt).
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    # Written every few seconds by the flow run's process while it lives (cropai.heartbeat).
    heartbeat_at: Mapped[datetime | None]
    batches_total: Mapped[int] = mapped_column(default=0)
    batches_done: Mapped[int] = mapped_column(default=0)
    map_key: Mapped[str | None] = mapped_column(String(500))
    quicklook_key: Mapped[str | None] = mapped_column(String(500))
    # The exact scene versions the last run read: scene_id, version, content_hash, acquired_at, object_key.
    input_scenes: Mapped[list[Any] | None] = mapped_column()
    # What the result's reader should know before trusting it (cropai.model_fit), as sentences.
    warnings: Mapped[list[Any] | None] = mapped_column()
    # How far its composites were from the model's training inputs (cropai.input_check.InputCheck.as_record).
    input_check: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class AnalysisClassStat(Base):
    """Pixels and hectares per crop class in one analysis' map."""

    __tablename__ = "analysis_class_stats"

    analysis_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    class_name: Mapped[str] = mapped_column(String(64))
    pixel_count: Mapped[int] = mapped_column(BigInteger)
    area_ha: Mapped[float] = mapped_column(Float)
    # Of pixel_count, those seen clear in too few of the season's bins to be trusted (counted apart).
    low_evidence_pixels: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class FieldPurpose(enum.StrEnum):
    training = "training"  # may label a model's training data
    reference = "reference"  # kept for validating maps: never used for training


class FieldParcel(BBoxColumns, Base):
    """A field parcel uploaded by its owner (GeoJSON polygon, EPSG:4326)."""

    __tablename__ = "fields"
    __table_args__ = (_bbox_index("fields"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str | None] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    geometry_geojson: Mapped[dict[str, Any]] = mapped_column()
    area_ha: Mapped[float] = mapped_column(Float)
    purpose: Mapped[FieldPurpose] = mapped_column(
        _enum_column(FieldPurpose), default=FieldPurpose.training, server_default="training"
    )
    reference_label: Mapped[str | None] = mapped_column(String(100))  # a reference field's crop, as uploaded
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FieldPrediction(Base):
    """The majority class of one field in one analysis, its pixel share and mean confidence."""

    __tablename__ = "field_predictions"

    analysis_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True)
    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"), primary_key=True, index=True)
    class_id: Mapped[int] = mapped_column(Integer)
    class_name: Mapped[str] = mapped_column(String(64))
    share: Mapped[float] = mapped_column(Float)  # 0..1 of the field's mapped pixels
    mean_confidence: Mapped[float] = mapped_column(Float)  # 0..1
    pixel_count: Mapped[int] = mapped_column(Integer)
    gap_filled_share: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # 0..1 of bins x pixels
    insufficient_evidence: Mapped[bool] = mapped_column(default=False, server_default=false())


class ReferenceSample(Base):
    """One labelled point of an analysis' sample design: the map class it was drawn from (its
    stratum) and the class a labeller saw there."""

    __tablename__ = "reference_samples"

    analysis_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True)
    point_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    stratum_id: Mapped[int] = mapped_column(Integer)
    label_class_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assessment(Base):
    """The latest accuracy assessment of an analysis' map (``cropai.assessment``), as JSON."""

    __tablename__ = "assessments"

    analysis_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # "sample" (labelled points) or "fields" (reference fields)
    result: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    """A request to train a model version on an owner's labelled fields, run as a flow run of
    the ``train`` deployment; status moves in ``cropai.training_runs``."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_owner_id_created_at", "owner_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))  # the model name the version is registered under
    status: Mapped[TrainingStatus] = mapped_column(
        _enum_column(TrainingStatus), default=TrainingStatus.queued, index=True
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    request: Mapped[dict[str, Any]] = mapped_column()  # the ParcelTraining, as JSON
    family: Mapped[str] = mapped_column(String(32))
    model_ref: Mapped[str | None] = mapped_column(String(160))  # name@version, once registered
    # overall_accuracy, macro_f1, baseline (overall_accuracy, macro_f1), validation_fields: held-out scores.
    metrics: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


# --- engine, sessions, migrations -------------------------------------------------------


def masked_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(settings: Settings) -> Engine:
    """An engine for the settings' database; the SQLite folder is created if missing."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": settings.connect_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"connect_timeout": max(1, round(settings.connect_timeout_s))}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers work during a write.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def check_database(engine: Engine) -> None:
    """Fail fast, naming the URL (password masked) and what to check."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ServiceUnavailable(
            f"cannot reach the database at {masked_url(str(engine.url))}: {reason}. "
            "Check that the server runs and accepts connections from this host, the user, "
            "password and database name in CROPAI_DATABASE_URL, and the firewall."
        ) from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


# Bookkeeping writes wait out a short outage of the database (a restart, a fail-over): the
# first retry after RETRY_FIRST_DELAY_S, each next one twice as late up to RETRY_MAX_DELAY_S,
# until RETRY_BUDGET_S have passed. Each pause is jittered so that many writers do not
# reconnect in step.
RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 8.0
RETRY_BUDGET_S = 60.0
RETRY_JITTER = 0.5  # a pause is 50-100 % of its nominal delay

_retry_budget_s: ContextVar[float] = ContextVar("retry_budget_s", default=RETRY_BUDGET_S)

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def retry_budget(seconds: float) -> Iterator[None]:
    """Let ``retry_transient`` writes in this block wait at most ``seconds`` for the database
    (a request handler cannot wait a minute)."""
    token = _retry_budget_s.set(seconds)
    try:
        yield
    finally:
        _retry_budget_s.reset(token)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or dropped the connection,
    not that it refused the statement (IntegrityError, DataError: retrying cannot help)."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError | DataError):
        return False
    return isinstance(exc, OperationalError) or exc.connection_invalidated


def retry_transient(
    write: Callable[Concatenate[sessionmaker[Session], P], T],
) -> Callable[Concatenate[sessionmaker[Session], P], T]:
    """Retry ``write(sessions, ...)`` while the database is unreachable, within the retry budget;
    then raise ServiceUnavailable naming the database.

    For writes that may run twice: the commit of an attempt may have landed before its
    connection dropped. Each attempt checks a connection out anew; the engine's pre-ping and
    SQLAlchemy's invalidation of a dropped connection's pool keep dead ones from coming back."""

    def retrying(sessions: sessionmaker[Session], /, *args: P.args, **kwargs: P.kwargs) -> T:
        started = time.monotonic()
        deadline = started + _retry_budget_s.get()
        delay_s = RETRY_FIRST_DELAY_S
        attempt = 1
        while True:
            try:
                return write(sessions, *args, **kwargs)
            except DBAPIError as exc:
                if not is_unreachable(exc):
                    raise
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    raise _unreachable(sessions, write.__name__, exc, time.monotonic() - started) from exc
                pause_s = min(left_s, delay_s * random.uniform(1 - RETRY_JITTER, 1.0))
                log.warning(
                    "%s: database unreachable (%s); retry %d in %.1f s",
                    write.__name__,
                    first_line(exc),
                    attempt,
                    pause_s,
                )
                time.sleep(pause_s)
                delay_s = min(2 * delay_s, RETRY_MAX_DELAY_S)
                attempt += 1

    # update_wrapper rather than @wraps: the decorator's type would hide the signature from callers.
    functools.update_wrapper(retrying, write)
    return retrying


def first_line(exc: BaseException) -> str:
    """The first line of a database error: the driver's own message, without SQL or parameters."""
    reason = getattr(exc, "orig", None) or exc
    return (str(reason).strip().splitlines() or [type(reason).__name__])[0]


def _unreachable(sessions: sessionmaker[Session], what: str, exc: DBAPIError, waited_s: float) -> ServiceUnavailable:
    bind = sessions.kw.get("bind")
    where = masked_url(str(bind.url)) if bind is not None else "CROPAI_DATABASE_URL"
    return ServiceUnavailable(
        f"cannot reach the database at {where} (tried for {waited_s:.0f} s; {what} not written): "
        f"{first_line(exc)}. Check that the server runs and accepts connections from this host and that "
        "CROPAI_DATABASE_URL points at it; the write can be retried once it answers."
    )


def alembic_config(engine: Engine) -> AlembicConfig:
    """An Alembic config bound to ``engine``; ``env.py`` reuses its connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_PACKAGE)
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    from alembic import command

    check_database(engine)
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True)
class MigrationState:
    """Where a catalogue's migrations stand against the ones this Crop AI ships."""

    url: str  # password masked
    revision: str | None  # None: no schema yet
    head: str
    known: bool  # False: a newer Crop AI migrated it past this one's head
    embedded: bool  # an SQLite file, which only this machine's Crop AI uses

    @property
    def current(self) -> bool:
        return self.revision == self.head

    @property
    def migrated_on_use(self) -> bool:
        """Whether the first command that needs this catalogue may migrate it by itself: an
        embedded one may, a shared server database is migrated by its operator."""
        return self.embedded and self.known

    def remedy(self) -> str:
        """What to do about a catalogue that is not current."""
        if not self.known:
            return f"a newer Crop AI migrated it past this one's newest revision ({self.head}): upgrade this one"
        return "run `cropai db upgrade`"

    def lag(self) -> str:
        """Where a catalogue that is not current stands, and what to do."""
        return f"at revision {self.revision or 'none'}: {self.remedy()}"


def migration_state(engine: Engine) -> MigrationState:
    """The catalogue's migration state, read without changing it; ServiceUnavailable when the
    database cannot be reached."""
    from alembic.script import ScriptDirectory

    check_database(engine)
    revision = current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config(engine))
    known = revision is None or revision in {step.revision for step in script.walk_revisions()}
    head = script.get_current_head()
    assert head is not None, "the migrations ship with the package"
    embedded = engine.url.get_backend_name() == "sqlite"
    return MigrationState(masked_url(str(engine.url)), revision, head, known, embedded)
