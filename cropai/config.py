"""Crop AI settings: one object, read from ``CROPAI_*`` variables and ``.env``.

Every other module receives a :class:`Settings` instead of reading the
environment itself, so a test or a worker can run with its own settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cropai.errors import SettingsError

ENV_PREFIX = "CROPAI_"
DEFAULT_HOME = Path("~/.cropai")
# A fixed development secret lets `cropai demo` run with no set-up; production refuses it.
DEV_SECRET_KEY = "cropai-dev-secret-do-not-use-in-production"
MIN_PRODUCTION_SECRET_CHARS = 32
# A random 32-character hex secret has fewer than 10 distinct characters about once in 10,000
# draws (fewer than 12: once in 60), so 10 refuses typed patterns without refusing real keys.
MIN_PRODUCTION_SECRET_DISTINCT_CHARS = 10
# Secrets anyone can read: the values .env.example ships (today's and earlier releases'), and
# MinIO's own default. Production refuses them for every secret setting (compared case-blind).
PLACEHOLDER_SECRETS = frozenset(
    {
        "REPLACE-ME-with-48-random-characters",
        "REPLACE-ME-postgres-password",
        "REPLACE-ME-minio-password",
        "CHANGE-me-to-a-long-random-string-of-48-characters",
        "CHANGE-me-postgres",
        "CHANGE-me-minio-at-least-8",
        "minioadmin",
        "admin:REPLACE-ME-prefect-password",
    }
)
GENERATE_SECRET_HINT = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"

# What each setting must look like, quoted in error messages.
EXPECTED_FORMS = {
    "home": "a folder path, e.g. ~/.cropai",
    "database_url": "an SQLAlchemy URL, e.g. sqlite:////path/cropai.db or "
    "postgresql+psycopg://user:password@host:5432/cropai",
    "storage_url": "a folder path, file:///path, or s3://bucket[/prefix]",
    "s3_endpoint": "host:port of the S3 API, e.g. 127.0.0.1:9000 (or http(s)://host:port)",
    "s3_secure": "true or false (use TLS to reach the S3 endpoint)",
    "dask_address": "empty for a local cluster, or a scheduler address such as tcp://host:8786",
    "dask_workers": "a whole number of local worker processes; 0 = one per core",
    "redis_url": "empty to keep rate limits and caches in each API process, or redis://host:6379/0 to share "
    "them among replicas",
    "worker_memory": "empty for Dask's default (the machine's memory shared among local workers), or a size "
    "such as 2GB: each local worker's memory limit, which also sizes the batches",
    "environment": "dev or production",
    "secret_key": f"a random string of at least {MIN_PRODUCTION_SECRET_CHARS} characters",
    "connect_timeout_s": "a number of seconds, e.g. 5",
    "ingest_concurrency": "a whole number of scenes ingested at once, 1 to 64",
    "prefect_api_url": "empty to use PREFECT_API_URL, or the Prefect server's API URL, e.g. http://127.0.0.1:4200/api",
    "analyze_deployment": "flow-name/deployment-name of the analysis deployment, e.g. analyze/analyze",
    "ingest_deployment": "flow-name/deployment-name of the ingestion deployment, e.g. ingest_scenes/ingest-scheduled",
    "train_deployment": "flow-name/deployment-name of the training deployment, e.g. train/train",
    "prefect_auth_string": "user:password of the Prefect server's basic auth (its PREFECT_SERVER_API_AUTH_STRING); "
    "empty when it has none",
    "api_host": "the address the API listens on, e.g. 127.0.0.1 or 0.0.0.0",
    "api_port": "a TCP port, e.g. 8000",
    "cors_origins": "comma-separated origins allowed to call the API from a browser, e.g. https://maps.example.org",
    "access_token_minutes": "minutes an access token is valid, e.g. 30",
    "refresh_token_days": "days a refresh token is valid, e.g. 14",
    "login_attempts_per_minute": "login attempts allowed per minute per client and account",
    "submissions_per_minute": "analyses a user may submit per minute",
    "max_aoi_km2": "the largest AOI an analysis may cover, in km²",
    "max_aoi_vertices": "the most vertices an AOI polygon may have",
    "max_window_days": "the longest date window an analysis may cover, in days",
    "max_fields_per_upload": "the most parcels one field upload may hold",
    "reconcile_after_s": "seconds without an update after which the API asks Prefect about a running analysis",
    "stale_run_after_s": (
        "seconds a running flow run may go without a heartbeat or progress before it counts as crashed"
    ),
    "orchestrator_deadline_s": "the most seconds one call to Prefect may take on a request, e.g. 8",
    "orchestrator_cooldown_s": "seconds the API answers 503 at once after Prefect failed to answer, e.g. 15",
    "flow_concurrency": "flow runs one deployment server runs at once (all deployments together), e.g. 4",
    "analysis_concurrency": "analysis flow runs at once across the whole system, e.g. 2",
    "active_analyses_per_user": "queued or running analyses one user may have at once",
    "login_attempts_per_client_per_minute": "login attempts allowed per minute from one client, all accounts together",
    "trusted_proxies": "comma-separated addresses of reverse proxies whose X-Forwarded-For is believed; empty = none",
    "monitoring_token": (
        "a bearer token for /metrics and the detailed /readyz (admins' tokens work too); empty = admins only"
    ),
    "max_request_bytes": "the largest request body the API reads, in bytes",
    "max_field_vertices": "the most vertices one field parcel may have",
    "ingest_roots": "comma-separated server folders ingestion may read from (the store's inbox always); empty = none",
    "stac_allow_private": "true or false: let STAC and asset URLs reach loopback and private-network hosts "
    "(link-local, multicast and unspecified addresses never are)",
    "basemap_url": "empty for none, or an XYZ tile URL template, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "basemap_attribution": "the credit line the base map's provider asks for",
}


class Settings(BaseSettings):
    """Where Crop AI keeps its data and how it reaches its services.

    Empty ``database_url`` / ``storage_url`` mean the embedded defaults under ``home``:
    an SQLite file and a local folder store.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore")

    home: Path = DEFAULT_HOME
    database_url: str = ""
    storage_url: str = ""
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = True
    s3_region: str = "us-east-1"
    dask_address: str = ""
    dask_workers: int = Field(default=0, ge=0)
    worker_memory: str = ""
    redis_url: str = Field(default="", pattern=r"^$|^rediss?://\S+$")
    environment: Literal["dev", "production"] = "dev"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    ingest_concurrency: int = Field(default=2, ge=1, le=64)
    input_shift_threshold: float = Field(default=1.5, gt=0)  # training spreads; see cropai.input_check

    # Orchestration: where the API finds Prefect and which deployments run analyses, ingestion, training.
    prefect_api_url: str = ""
    analyze_deployment: str = Field(default="analyze/analyze", pattern=r"^[^/]+/[^/]+$")
    ingest_deployment: str = Field(default="ingest_scenes/ingest-scheduled", pattern=r"^[^/]+/[^/]+$")
    train_deployment: str = Field(default="train/train", pattern=r"^[^/]+/[^/]+$")
    prefect_auth_string: SecretStr = SecretStr("")

    # API: serving, tokens, limits.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    cors_origins: str = ""
    access_token_minutes: int = Field(default=30, ge=1)
    refresh_token_days: int = Field(default=14, ge=1)
    login_attempts_per_minute: int = Field(default=10, ge=1)
    submissions_per_minute: int = Field(default=20, ge=1)
    max_aoi_km2: float = Field(default=2500.0, gt=0)  # 50 km x 50 km: ~25 Mpix at 10 m
    max_aoi_vertices: int = Field(default=10_000, ge=4)
    max_window_days: int = Field(default=400, ge=1)  # one season with margins
    max_fields_per_upload: int = Field(default=10_000, ge=1)
    reconcile_after_s: float = Field(default=60.0, ge=0)

    # Faults and bounds: how long a silent run lives, how long the API waits on Prefect,
    # how much work runs at once, what a request may carry, where ingestion may read.
    stale_run_after_s: float = Field(default=300.0, gt=0)
    orchestrator_deadline_s: float = Field(default=8.0, gt=0)
    orchestrator_cooldown_s: float = Field(default=15.0, ge=0)
    flow_concurrency: int = Field(default=4, ge=1)
    analysis_concurrency: int = Field(default=2, ge=1)
    active_analyses_per_user: int = Field(default=10, ge=1)
    login_attempts_per_client_per_minute: int = Field(default=30, ge=1)
    trusted_proxies: str = ""
    monitoring_token: SecretStr = SecretStr("")
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_field_vertices: int = Field(default=10_000, ge=4)
    ingest_roots: str = ""
    stac_allow_private: bool = False

    # Evidence: a field (or pixel) whose time-bin values are mostly gap-filled (interpolated, not
    # seen through clouds) is predicted from guesses; above this share (0..1) it is marked
    # "insufficient evidence" and counted apart in class areas.
    max_gap_filled_share: float = Field(default=0.5, ge=0, le=1)

    # Web map viewer: the base map under the crop layer, fetched by the browser; optional.
    basemap_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png", pattern=r"^$|^https?://[^/\s]+/\S*\{z\}\S*$"
    )
    basemap_attribution: str = "© OpenStreetMap contributors"

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, home: Path) -> Path:
        return home.expanduser()

    @field_validator("worker_memory", mode="after")
    @classmethod
    def _a_size(cls, size: str) -> str:
        if size and byte_count(size) < 256 * 2**20:
            raise ValueError(f"{size} is below 256 MB, too little for a worker to hold a model and a batch")
        return size

    @field_validator("storage_url", mode="after")
    @classmethod
    def _known_storage_scheme(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme not in ("", "file", "s3"):
            raise ValueError(f"unknown scheme {scheme!r}")
        if scheme == "s3" and not urlsplit(url).netloc:
            raise ValueError("s3:// URL has no bucket")
        return url

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        """In production, refuse secrets that anyone could know or guess; the message names the
        variable and never the value."""
        if self.environment != "production":
            return self
        problems = []
        if reason := _weak_signing_key(self.secret_key.get_secret_value()):
            problems.append(
                f"{ENV_PREFIX}SECRET_KEY is {reason}: set it to a random string of at least "
                f"{MIN_PRODUCTION_SECRET_CHARS} characters when {ENV_PREFIX}ENVIRONMENT=production; "
                f"{GENERATE_SECRET_HINT}"
            )
        for name in ("s3_secret_key", "monitoring_token", "prefect_auth_string"):
            if _is_placeholder(getattr(self, name).get_secret_value()):
                problems.append(
                    f"{ENV_PREFIX}{name.upper()} is a placeholder from .env.example or a well-known default: "
                    f"set a secret of your own when {ENV_PREFIX}ENVIRONMENT=production"
                )
        if _is_placeholder(urlsplit(self.database_url).password or ""):
            problems.append(
                f"the password in {ENV_PREFIX}DATABASE_URL is a placeholder from .env.example: "
                f"set a password of your own when {ENV_PREFIX}ENVIRONMENT=production"
            )
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    # Plain properties, not cached: model_copy(update=...) would carry a cached value over.
    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'cropai.db'}"

    @property
    def resolved_storage_url(self) -> str:
        """The store URL, defaulting to the folder ``home/store``."""
        return self.storage_url or str(self.home / "store")

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def uses_s3(self) -> bool:
        return urlsplit(self.resolved_storage_url).scheme == "s3"

    def as_environment(self) -> dict[str, str]:
        """These settings as ``CROPAI_*`` variables (secrets in clear): what a child process
        Crop AI starts needs to read the same settings."""
        return {
            f"{ENV_PREFIX}{name.upper()}": value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            for name, value in self
        }


def _is_placeholder(secret: str) -> bool:
    return secret.casefold() in {placeholder.casefold() for placeholder in PLACEHOLDER_SECRETS}


def _weak_signing_key(secret: str) -> str | None:
    """Why ``secret`` cannot sign production tokens, or None when it can."""
    if secret == DEV_SECRET_KEY:
        return "the public development default"
    if _is_placeholder(secret):
        return "a placeholder from .env.example"
    if len(secret) < MIN_PRODUCTION_SECRET_CHARS:
        return f"shorter than {MIN_PRODUCTION_SECRET_CHARS} characters"
    repeats_a_pattern = any(
        secret == secret[:period] * (len(secret) // period) + secret[: len(secret) % period]
        for period in range(1, len(secret) // 2 + 1)
    )
    if len(set(secret)) < MIN_PRODUCTION_SECRET_DISTINCT_CHARS or repeats_a_pattern:
        return "too easy to guess (too few distinct characters, or a short pattern repeated)"
    return None


SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def byte_count(size: str) -> int:
    """Bytes in a size written as Dask writes them: ``2GB`` (10^9), ``6GiB`` (2^30), ``700 MB``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", size)
    if match is None or match.group(2).lower() not in SIZE_UNITS:
        raise ValueError(f"{size!r} is not a size such as 2GB or 6GiB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``, turning a bad value into a
    :class:`SettingsError` that names the variable and the form it expects. ``overrides`` take
    the place of variables and are validated like them."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid Crop AI settings:"]
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if not field:  # a model-level rule such as the production secret check
            lines.append(f"  {error['msg'].removeprefix('Value error, ')}")
            continue
        variable = f"{ENV_PREFIX}{field.upper()}"
        given = error.get("input")
        shown = "***" if "secret" in field else repr(given)
        expected = EXPECTED_FORMS.get(field, error["msg"])
        lines.append(f"  {variable}={shown}: {error['msg']}; expected {expected}")
    return "\n".join(lines)
