"""The database and object store a process works with, built once per settings.

Prefect tasks run many times in one worker process; building an engine (and its
connection pool) or an S3 client for each call would waste connections and time.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cropai.config import Settings, load_settings
from cropai.db import make_engine, session_factory
from cropai.storage import ObjectStore, open_store


@dataclass(frozen=True)
class Services:
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore


_built: dict[str, Services] = {}
_lock = threading.Lock()


def services(settings: Settings | None = None) -> Services:
    """The process-wide services for ``settings`` (by default this process' own, read by
    ``load_settings``): equal settings share one engine and store."""
    if settings is None:
        settings = load_settings()
    key = json.dumps(settings.as_environment(), sort_keys=True)
    with _lock:
        if key not in _built:
            engine = make_engine(settings)
            _built[key] = Services(engine, session_factory(engine), open_store(settings))
        return _built[key]


def dispose_services() -> None:
    """Close every pooled connection this process holds (at shutdown, or between tests)."""
    with _lock:
        for built in _built.values():
            built.engine.dispose()
        _built.clear()
