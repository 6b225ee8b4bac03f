"""Heartbeats: a flow run's process says it is alive by writing ``heartbeat_at`` on its row.

A runner killed with its flow run (SIGKILL, OOM, a lost machine) runs no hook and leaves
its row ``running``; the reconciler (``api.reconcile``) takes a row whose heartbeat is
older than ``stale_run_after_s`` for a dead run. The beat is a daemon thread, so it stops
with the process and never keeps it alive; a failed write (the database away for a
moment) is logged and tried again at the next beat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cropai.config import Settings
from cropai.db import Analysis, IngestRun, session_scope, utcnow

logger = logging.getLogger("cropai.heartbeat")

# Beats per stale period: a run counts as dead only after several missed beats in a row.
BEATS_PER_STALE_PERIOD = 5
MAX_INTERVAL_S = 30.0


def heartbeat_interval_s(settings: Settings) -> float:
    return min(MAX_INTERVAL_S, max(0.5, settings.stale_run_after_s / BEATS_PER_STALE_PERIOD))


@contextmanager
def heartbeat(
    sessions: sessionmaker[Session], row: type[Analysis] | type[IngestRun], row_id: UUID | int, interval_s: float
) -> Iterator[None]:
    """Write ``row.heartbeat_at`` now and every ``interval_s`` seconds until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                with session_scope(sessions) as session:
                    session.execute(update(row).where(row.id == row_id).values(heartbeat_at=utcnow()))
            except SQLAlchemyError as exc:
                logger.warning(
                    "heartbeat of %s %s not written: %s", row.__tablename__, row_id, str(exc).splitlines()[0]
                )
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{row.__tablename__}-{row_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s + 5)
