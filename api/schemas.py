"""What the API accepts and returns. Geometry is GeoJSON in EPSG:4326 (lon, lat);
areas are hectares, dates are ISO 8601, times are UTC."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, field_validator

from cropai.accounts import FULL_NAME_MAX_CHARS, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, password_problem
from cropai.db import AnalysisStatus, Role, TrainingStatus, as_utc
from cropai.season import BinLength
from models.versions import NAME_PATTERN

T = TypeVar("T")


# Every stored time is UTC; SQLite hands them back naive, so they are marked on the way out.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# --- auth and users -------------------------------------------------------------------------


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str = Field(description="good for one POST /auth/refresh, which returns the next one: keep that")
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    full_name: str
    role: Role
    is_active: bool
    created_at: UtcDatetime
    last_login_at: UtcDatetime | None


class UserCreate(BaseModel):
    email: EmailStr
    # The rule is the core's (the CLI applies it too); the schema only documents its bounds.
    password: str = Field(json_schema_extra={"minLength": PASSWORD_MIN_CHARS, "maxLength": PASSWORD_MAX_CHARS})
    full_name: str = Field(default="", max_length=FULL_NAME_MAX_CHARS)
    role: Role = Role.analyst

    @field_validator("password")
    @classmethod
    def _password_rules(cls, password: str) -> str:
        if problem := password_problem(password):
            raise ValueError(problem)
        return password


class UserUpdate(BaseModel):
    full_name: str | None = Field(default=None, max_length=FULL_NAME_MAX_CHARS)
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(
        default=None, json_schema_extra={"minLength": PASSWORD_MIN_CHARS, "maxLength": PASSWORD_MAX_CHARS}
    )

    @field_validator("password")
    @classmethod
    def _password_rules(cls, password: str | None) -> str | None:
        if password is not None and (problem := password_problem(password)):
            raise ValueError(problem)
        return password


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    last_used_at: UtcDatetime | None
    revoked_at: UtcDatetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret: shown this once, only its hash is kept")


# --- catalogue ---------------------------------------------------------------------------


class SceneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    scene_id: str
    version: int
    platform: str
    acquired_at: UtcDatetime
    cloud_fraction: float | None = Field(description="0..1 of the scene flagged cloud or shadow")
    crs: str
    resolution_m: float
    width: int
    height: int
    bands: list[Any]
    bbox_wgs84: tuple[float, float, float, float]
    footprint_geojson: dict[str, Any]
    product_id: str | None = Field(description="the provider's product, e.g. S2A_MSIL2A_..._T29UNU_...")
    mgrs_tile: str | None = Field(description="MGRS tile, e.g. 29UNU")
    relative_orbit: int | None
    processing_baseline: str | None = Field(description="ESA processing baseline, e.g. 04.00")
    radiometric_offset: int = Field(
        description="digital numbers taken off the source's pixels to reach reflectance x 10000 (e.g. -1000)"
    )
    content_hash: str = Field(description="SHA-256 of the source files; analyses record it")


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    ref: str = Field(description="name@version, as an analysis asks for it")
    name: str
    version: str
    format: str
    description: str
    metrics: dict[str, Any] = Field(description="held-out metrics: overall accuracy, macro F1, per class")
    classes: list[Any]
    bands: list[Any]
    created_at: UtcDatetime
    card: dict[str, Any] = Field(
        description="model card: family and encoder, synthetic-only or not, training region (bbox) and season, "
        "legend with codes, fields and pixels per class, held-out and baseline scores"
    )


class LegendRow(BaseModel):
    """One row of a legend, as a legend CSV's (see ``cropai.legend``): a code and its class."""

    model_config = ConfigDict(populate_by_name=True)

    code: str | int = Field(description='a label value of the fields, e.g. 1110 or "winter_wheat"')
    class_name: str = Field(
        alias="class",
        min_length=1,
        max_length=64,
        description='the class the code belongs to; rows of one class merge, "ignore" leaves those fields out',
    )
    colour: str | None = Field(default=None, description='"#rrggbb"; without it one from a palette')

    @field_validator("code")
    @classmethod
    def _short_code(cls, code: str | int) -> str | int:
        if isinstance(code, str) and len(code) > 200:
            raise ValueError("a code is at most 200 characters")
        return code


# The days a training season may span: satellite archives, not the calendar's ends.
SEASON_DATES = (date(1970, 1, 1), date(2099, 12, 31))


class TrainingRequest(BaseModel):
    name: str = Field(
        pattern=NAME_PATTERN.pattern,
        description="model name the version is registered under (lower case, digits, - and _), e.g. flanders",
    )
    label_property: str = Field(
        min_length=1, max_length=200, description="the fields' property holding each crop code, e.g. crop_code"
    )
    field_ids: list[Annotated[int, Field(ge=1, le=2_147_483_647)]] | None = Field(
        default=None, min_length=1, max_length=100_000, description="train on these of your fields; default all"
    )
    legend: list[LegendRow] | None = Field(
        default=None,
        min_length=1,
        max_length=5000,
        description="code -> class rows; without one, each distinct value of the property is a class",
    )
    start: date = Field(ge=SEASON_DATES[0], le=SEASON_DATES[1], description="the season's first day")
    end: date = Field(
        ge=SEASON_DATES[0],
        le=SEASON_DATES[1],
        description="its last day: the season is the whole bins from start to end (it may cross the year)",
    )
    bin_length: BinLength = "month"
    family: Literal["cropnet", "presto"] = Field(
        default="cropnet", description="cropnet (trained from scratch) or presto (pretrained encoder, linear head)"
    )
    inner_buffer_m: float = Field(default=0.0, ge=0.0, le=100.0, description="shrink each field by this many metres")
    min_fields: int = Field(default=2, ge=1, le=10_000, description="fewest fields a class may have")
    merge_rare: bool = Field(default=False, description="merge classes below min_fields into 'other'")
    epochs: int = Field(default=40, ge=1, le=200, description="at most: training stops earlier when it stops improving")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of the split, the weights and the batches")


class TrainingRunOut(BaseModel):
    id: uuid.UUID
    name: str = Field(description="the model name")
    owner_id: int | None
    status: TrainingStatus
    status_reason: str | None = Field(description="why it failed, e.g. a label value the legend does not map")
    family: str
    flow_run_id: uuid.UUID | None
    model_version: str | None = Field(description="name@version it registered, once completed")
    metrics: dict[str, Any] | None = Field(
        description="held-out overall accuracy, macro F1 and fields, and the baseline's, once completed"
    )
    request: dict[str, Any] = Field(description="what it trains on: fields, label property, legend, season")
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


# --- fields -----------------------------------------------------------------------------


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection of (Multi)Polygons in EPSG:4326."""

    type: str = Field(description='"FeatureCollection"')
    features: list[dict[str, Any]]


class FieldsCreated(BaseModel):
    ids: list[int]
    count: int


# --- analyses ----------------------------------------------------------------------------


class AnalysisCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    aoi: dict[str, Any] = Field(
        description="the area of interest: a GeoJSON Polygon or MultiPolygon (EPSG:4326), or a Feature of one",
        examples=[
            {
                "type": "Polygon",
                "coordinates": [[[1.60, 48.20], [1.64, 48.20], [1.64, 48.22], [1.60, 48.22], [1.60, 48.20]]],
            }
        ],
    )
    start_date: date
    end_date: date
    model: str = Field(default="cropnet@latest", max_length=160, description="name@version or name@latest")


class ClassStatOut(BaseModel):
    class_id: int
    class_name: str
    pixel_count: int
    area_ha: float
    colour: str = Field(description='"#rrggbb": the class colour of the map and its legend')
    low_evidence_pixels: int = Field(
        default=0,
        description="of pixel_count, those gap-filled in more than the allowed share of time bins "
        "(seen through clouds too rarely to trust)",
    )
    low_evidence_ha: float = Field(default=0.0, description="the hectares of low_evidence_pixels")


class AnalysisLinks(BaseModel):
    self: str
    map: str | None = None
    map_style: str | None = None  # the QGIS style (.qml) of the map's class band
    map_categories: str | None = None  # GDAL's sidecar (.aux.xml): the class band's category names
    quicklook: str | None = None
    fields: str | None = None
    evidence: str | None = None
    assessment: str | None = None


class InputShiftOut(BaseModel):
    bin: str
    band: str
    distance: float = Field(description="training spreads between the analysis' mean and the training mean")
    analysis_mean: float
    training_mean: float


class InputCheckOut(BaseModel):
    """How far the analysis' clear composites were from its model's training inputs."""

    score: float = Field(description="the largest distance over time bins and bands, in training spreads")
    threshold: float
    flagged: bool
    compared: int = Field(description="(time bin, band) pairs scored")
    worst: list[InputShiftOut] = Field(default_factory=list, description="the pairs beyond the threshold")


class InputSceneOut(BaseModel):
    scene_id: str
    version: int
    content_hash: str = Field(description="SHA-256 of the source files the scene was ingested from")
    acquired_at: UtcDatetime


class AnalysisOut(BaseModel):
    id: uuid.UUID
    name: str
    owner_id: int | None
    status: AnalysisStatus
    status_reason: str | None
    model: str = Field(description="the model as asked, e.g. cropnet@latest")
    model_version: str | None = Field(description="the version it resolved to, once planned")
    aoi: dict[str, Any]
    aoi_area_ha: float
    start_date: date
    end_date: date
    flow_run_id: uuid.UUID | None
    batches_total: int
    batches_done: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    classes: list[ClassStatOut] = Field(default_factory=list, description="hectares per class, once completed")
    input_scenes: list[InputSceneOut] = Field(
        default_factory=list, description="the exact scene versions the analysis read, once planned"
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="what to know before trusting the result: a model trained on synthetic scenes only, "
        "an AOI far from the model's training region, a window longer than the model's season",
    )
    input_check: InputCheckOut | None = Field(
        default=None,
        description="the analysis' inputs against its model's training inputs, once completed "
        "(none for model versions registered without input statistics)",
    )
    links: AnalysisLinks
    rerun_of: uuid.UUID | None = Field(
        default=None, description="the completed analysis this one repeats on the inputs it recorded"
    )


class ClassAreaChangeOut(BaseModel):
    id: int
    name: str
    area_ha_a: float
    area_ha_b: float
    difference_ha: float = Field(description="b minus a: positive where the class grew")


class FieldChangeOut(BaseModel):
    field_id: int
    class_a: str | None = Field(description="the class analysis a predicted; null where it predicted none")
    class_b: str | None


class ComparisonOut(BaseModel):
    a: uuid.UUID
    b: uuid.UUID
    identical: bool = Field(description="same grid, same class and confidence in every pixel, same field classes")
    reason: str | None = Field(description="why the two are not identical; null when they are")
    pixels_differing: int | None = Field(
        description="pixels whose class differs; null when the maps are on different grids"
    )
    classes: list[ClassAreaChangeOut]
    fields_changed: list[FieldChangeOut]


class IngestRequest(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=1000,
        description="store:inbox/... (the object store's inbox), a STAC catalog or API URL on a public host, "
        "or a folder or file on the workers inside CROPAI_INGEST_ROOTS",
    )
    band_mapping: list[Annotated[str, Field(max_length=16)] | None] | None = Field(
        default=None,
        max_length=32,
        description="names of a file's bands in order when the file does not describe them, e.g. "
        '["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"] (null to skip one)',
    )
    radiometric_offset: int = Field(
        default=0,
        ge=-10_000,
        le=10_000,
        description="offset in digital numbers of GeoTIFF stacks whose tags do not say it, e.g. -1000 for ESA L2A "
        "at processing baseline 04.00 or later; SAFE products and STAC items say their own",
    )


class FlowRunStarted(BaseModel):
    flow_run_id: uuid.UUID
    deployment: str


class IngestRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    flow_run_id: uuid.UUID | None
    source: str
    status: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None
    found: int
    ingested: int
    skipped: int
    rejected: int
    rejections: list[Any]
    error: str | None


# --- assessment -----------------------------------------------------------------------------


class SampleLabelsStored(BaseModel):
    analysis_id: uuid.UUID
    count: int = Field(description="labelled points stored, in place of any earlier set")
    points_per_class: dict[str, int] = Field(description="labelled points per map class (stratum)")


class EstimateOut(BaseModel):
    value: float
    standard_error: float
    ci95: tuple[float, float] = Field(description="the 95 % interval (accuracies within 0..1, areas from 0)")


class AssessedClassOut(BaseModel):
    id: int
    name: str
    colour: str


class ClassAssessmentOut(BaseModel):
    id: int
    name: str
    mapped_area_ha: float
    estimated_area_ha: EstimateOut = Field(description="error-adjusted area")
    users_accuracy: EstimateOut | None = Field(description="null for a class the map does not show")
    producers_accuracy: EstimateOut | None = Field(description="null for a class no reference shows")
    f1: float | None
    reference_count: int = Field(description="reference points or pixels of this class")


class DisagreeingFieldOut(BaseModel):
    field_id: int
    reference: str
    predicted: str


class FieldAgreementOut(BaseModel):
    assessed: int
    agreeing: int
    agreement: float | None
    disagreeing: list[DisagreeingFieldOut]


class AssessmentOut(BaseModel):
    """An analysis' map against reference data (Olofsson et al. 2014 estimators): matrices' rows
    are map classes, columns reference classes, both in the order of ``classes``."""

    analysis_id: uuid.UUID
    source: Literal["sample", "fields"]
    created_at: UtcDatetime
    unit: Literal["points", "pixels"]
    sample_size: int
    classes: list[AssessedClassOut]
    confusion_matrix: list[list[int]]
    area_weighted_matrix: list[list[float]] = Field(description="p_ij: area proportions, summing to 1")
    overall_accuracy: EstimateOut
    per_class: list[ClassAssessmentOut]
    fields: FieldAgreementOut | None = Field(description="reference fields only: majority map class against label")
    note: str
