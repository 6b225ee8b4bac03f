"""The `cropai db` and `cropai store` groups and `cropai check`: where Crop AI keeps its
records and its files. These commands report a catalogue's schema; only `db upgrade`
changes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import Engine

from cropai.cli.common import console, prepare_store
from cropai.config import load_settings
from cropai.db import current_revision, make_engine, masked_url, migration_state, upgrade_database
from cropai.errors import CropAIError, ServiceUnavailable
from cropai.storage import ObjectStore, open_store

db_app = typer.Typer(help="Create and migrate the catalogue database.", no_args_is_help=True)
store_app = typer.Typer(help="Inspect and prepare the object store.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the catalogue's migrations (SQLite or PostgreSQL)."""
    engine = make_engine(load_settings())
    upgrade_database(engine, revision)
    console.print(f"[green]database at revision[/] {current_revision(engine)}: {masked_url(str(engine.url))}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    schema = migration_state(make_engine(load_settings()))
    remedy = "" if schema.current else f" ({schema.remedy()})"
    console.print(f"{schema.url}: revision {schema.revision or 'none'}{remedy}")


@store_app.command("init")
def store_init() -> None:
    """Create the store's folder or bucket if it does not exist yet."""
    store = open_store(load_settings())
    prepare_store(store)
    console.print(f"[green]store ready[/] {store.url}")


@store_app.command("ls")
def store_ls(prefix: Annotated[str, typer.Argument(help="Key prefix, e.g. scenes/.")] = "") -> None:
    """List the objects under a prefix with their sizes."""
    for info in open_store(load_settings()).list(prefix):
        console.print(f"{info.size_bytes:>14,}  {info.key}", highlight=False)


def check() -> None:
    """Show the effective settings and check that the database and the store answer."""
    settings = load_settings()
    table = Table("component", "where", "status")
    engine = make_engine(settings)
    store = open_store(settings)
    probes: list[tuple[str, str, Callable[[], str]]] = [
        ("database", masked_url(str(engine.url)), lambda: _database_status(engine)),
        ("store", store.url, lambda: _store_status(store)),
    ]
    failures = 0
    for name, where, probe in probes:
        try:
            table.add_row(name, where, probe())
        except CropAIError as exc:
            failures += 1
            table.add_row(name, where, f"[red]{exc}[/]")
    table.add_row("dask", settings.dask_address or "local cluster (started per run)", "-")
    table.add_row("environment", settings.environment, "-")
    console.print(table)
    if failures:
        raise typer.Exit(1)


def _database_status(engine: Engine) -> str:
    """ok with this Crop AI's schema, or without it where the next command migrates it by
    itself; a ServiceUnavailable saying what to do where that is the operator's job."""
    schema = migration_state(engine)
    if schema.current:
        return "[green]ok[/]"
    if schema.migrated_on_use:
        return f"[yellow]ok, at revision {schema.revision or 'none'}: the next command that needs it migrates it[/]"
    raise ServiceUnavailable(schema.lag())


def _store_status(store: ObjectStore) -> str:
    store.check()
    return "[green]ok[/]"
