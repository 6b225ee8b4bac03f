"""What the command groups share: the consoles, option parsing, the progress bar, this
process's services, a quiet Prefect, and a catalogue ready for the command at hand."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from alembic.script import ScriptDirectory
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from cropai.db import ModelVersion, alembic_config, check_database, current_revision, masked_url, upgrade_database
from cropai.errors import InvalidInput, ServiceUnavailable
from cropai.services import Services, services
from cropai.storage import S3Store

console = Console()
errors = Console(stderr=True)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(
            f"--bbox {text!r}: expected four numbers 'minx,miny,maxx,maxy' in degrees (lon/lat)"
        ) from None
    return minx, miny, maxx, maxy


def parse_date(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r}: expected a date as YYYY-MM-DD") from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def quiet_prefect() -> None:
    """Prefect's console logging below warnings and its ephemeral API's shutdown chatter off."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    # The first ephemeral server of a fresh venv compiles and migrates; on 2 cores that took
    # longer than Prefect's 20 s default and `make demo` failed on a fresh clone.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


# --- the catalogue's schema -----------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
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


def schema_of(engine: Engine) -> Schema:
    """The catalogue's migration state, read without changing it; ServiceUnavailable when the
    database cannot be reached."""
    check_database(engine)
    revision = current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config(engine))
    known = revision is None or revision in {step.revision for step in script.walk_revisions()}
    head = script.get_current_head()
    assert head is not None, "the migrations ship with the package"
    embedded = engine.url.get_backend_name() == "sqlite"
    return Schema(masked_url(str(engine.url)), revision, head, known, embedded)


def ready_catalogue() -> Services:
    """The services of a catalogue that has this Crop AI's schema: the embedded SQLite catalogue
    is migrated here, so that a new CROPAI_HOME just works; a server database (PostgreSQL) that
    lags stops the command with what to run."""
    svc = services()
    schema = schema_of(svc.engine)
    if schema.current:
        return svc
    if schema.migrated_on_use:
        upgrade_database(svc.engine)
        return svc
    raise ServiceUnavailable(f"the catalogue at {schema.url} is {schema.lag()}")


def prepare_catalogue() -> ModelVersion:
    """Migrate the catalogue, create the store's bucket or folder, register the shipped model
    (what the compose file's one-shot `migrate` service does); returns the model version."""
    # The registry loads torch: imported here, for the commands that register a model.
    from models.registry import ensure_default_model

    svc = services()
    upgrade_database(svc.engine)
    if isinstance(svc.store, S3Store):
        svc.store.ensure_bucket()
    svc.store.check()
    return ensure_default_model(svc.store, svc.sessions)
