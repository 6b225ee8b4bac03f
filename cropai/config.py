"""Crop AI settings: one object, read from ``CROPAI_*`` variables and ``.env``.

Every other module receives a :class:`Settings` instead of reading the
environment itself, so a test or a worker can run with its own settings.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cropai.errors import SettingsError

ENV_PREFIX = "CROPAI_"
DEFAULT_HOME = Path("~/.cropai")
# A fixed development secret lets `cropai demo` run with no set-up; production refuses it.
DEV_SECRET_KEY = "cropai-dev-secret-do-not-use-in-production"
MIN_PRODUCTION_SECRET_CHARS = 32

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
    "environment": "dev or production",
    "secret_key": f"a random string of at least {MIN_PRODUCTION_SECRET_CHARS} characters",
    "connect_timeout_s": "a number of seconds, e.g. 5",
    "ingest_concurrency": "a whole number of scenes ingested at once, 1 to 64",
}


class Settings(BaseSettings):
    """Where Crop AI keeps its data and how it reaches its services.

    Empty ``database_url`` / ``storage_url`` mean the embedded defaults under ``home``:
    an SQLite file and a local folder store.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

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
    environment: Literal["dev", "production"] = "dev"
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    ingest_concurrency: int = Field(default=2, ge=1, le=64)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, home: Path) -> Path:
        return home.expanduser()

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
        if self.environment != "production":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEV_SECRET_KEY or len(secret) < MIN_PRODUCTION_SECRET_CHARS:
            raise ValueError(
                f"{ENV_PREFIX}SECRET_KEY must be set to a random string of at least "
                f"{MIN_PRODUCTION_SECRET_CHARS} characters when {ENV_PREFIX}ENVIRONMENT=production "
                "(the development default is refused); generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'cropai.db'}"

    @cached_property
    def resolved_storage_url(self) -> str:
        """The store URL, defaulting to the folder ``home/store``."""
        return self.storage_url or str(self.home / "store")

    @property
    def uses_s3(self) -> bool:
        return urlsplit(self.resolved_storage_url).scheme == "s3"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and ``.env``, turning a bad value into a
    :class:`SettingsError` that names the variable and the form it expects."""
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
