"""What the command groups share: the consoles, option parsing, the progress bar, this
process's services, a quiet Prefect, and a catalogue ready for the command at hand."""

from __future__ import annotations

import os
from datetime import date

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cropai.db import ModelVersion, migration_state, upgrade_database
from cropai.errors import InvalidInput, ServiceUnavailable
from cropai.services import Services, services
from cropai.storage import ObjectStore, S3Store

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


def ready_catalogue() -> Services:
    """The services of a catalogue that has this Crop AI's schema: the embedded SQLite catalogue
    is migrated here, so that a new CROPAI_HOME just works; a server database (PostgreSQL) that
    lags stops the command with what to run."""
    svc = services()
    schema = migration_state(svc.engine)
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
    prepare_store(svc.store)
    return ensure_default_model(svc.store, svc.sessions)


def prepare_store(store: ObjectStore) -> None:
    """Create the store's bucket (S3) when it is missing, then check that the store answers."""
    if isinstance(store, S3Store):
        store.ensure_bucket()
    store.check()
