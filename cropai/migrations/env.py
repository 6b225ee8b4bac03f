"""Alembic environment: runs migrations on the engine Crop AI gives it, or on the
database of the current settings when called as plain ``alembic``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from cropai.config import load_settings
from cropai.db import Base, make_engine

config = context.config


def _engine() -> Engine:
    engine = config.attributes.get("engine")  # set by cropai.db.alembic_config
    if isinstance(engine, Engine):
        return engine
    return make_engine(load_settings())


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
