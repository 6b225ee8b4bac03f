"""Keep the catalogue true to Prefect when a flow run ends without its hooks.

A flow run's state hooks mark its analysis or ingest run finished, but a runner that dies
(SIGKILL, OOM, a lost machine) runs none, and Prefect keeps the run ``Running`` for good.
So a row that has been silent for a while is checked against its flow run: a run Prefect
reports as ended leaves the row ended with Prefect's reason, and a run whose process has
stopped writing heartbeats (``cropai.heartbeat``) for ``stale_run_after_s`` is ended in
Prefect as ``Crashed`` (or ``Cancelled`` when it was being cancelled) and its row failed with
the reason. Rows are checked when read and by a periodic sweep in each API process; every
step is idempotent, so several replicas may sweep at once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.orchestrator import FlowRunStatus, Orchestrator
from cropai.analysis_runs import FINISHED, cancel, fail
from cropai.config import Settings
from cropai.db import Analysis, IngestRun, RunStatus, as_utc, session_scope, utcnow
from cropai.errors import ServiceUnavailable

logger = logging.getLogger("cropai.api")

# A flow run is Completed in Prefect a moment before its completion hook marks the row:
# only a run completed this long ago without a completed row counts as broken.
COMPLETION_GRACE_S = 120.0
# States in which a run has (or had) a process that should be sending heartbeats.
LIVE_STATES = ("PENDING", "RUNNING", "CANCELLING")
MAX_SWEEP_INTERVAL_S = 30.0

# How Prefect says a flow run ended, and why.
Outcome = Literal["failed", "cancelled", "completed"]
Ended = tuple[Outcome, str]


def _silent_for(*moments: datetime | None) -> float:
    latest = max((as_utc(m) for m in moments if m is not None), default=None)
    return (datetime.now(UTC) - latest).total_seconds() if latest else float("inf")


def _run_ended(run: FlowRunStatus | None, flow_run_id: object) -> Ended | None:
    """(outcome, reason) when Prefect says the run is over: outcome is failed, cancelled or completed."""
    if run is None:
        return "failed", f"its flow run {flow_run_id} no longer exists in Prefect"
    if run.state_type == "CANCELLED":
        return "cancelled", run.message or "flow run cancelled"
    if run.state_type in ("FAILED", "CRASHED"):
        detail = f": {run.message}" if run.message else ""
        return "failed", f"flow run {run.name} ended {run.state_name}{detail}"
    if run.state_type == "COMPLETED":
        return "completed", ""
    return None


def _end_dead_run(
    orchestrator: Orchestrator, flow_run_id: uuid.UUID, run: FlowRunStatus, settings: Settings, silent_s: float
) -> Ended | None:
    """End a run whose process stopped beating; (outcome, reason) for its row, else None."""
    if run.state_type not in LIVE_STATES or min(silent_s, run.state_age_s) < settings.stale_run_after_s:
        return None
    if run.state_type == "CANCELLING":
        reason = "cancelled (its runner stopped before confirming it)"
        orchestrator.end(flow_run_id, "CANCELLED", reason)
        return "cancelled", reason
    reason = (
        f"flow run {run.name} stopped: no heartbeat from its process for {silent_s:.0f} s "
        "(the runner or its machine died)"
    )
    orchestrator.end(flow_run_id, "CRASHED", reason)
    return "failed", reason


def _settle(
    orchestrator: Orchestrator, flow_run_id: uuid.UUID, settings: Settings, silent_s: float
) -> tuple[Ended | None, FlowRunStatus | None]:
    """How a silent row's flow run ended ((outcome, reason), or None while it lives) and its status;
    a ServiceUnavailable when Prefect cannot tell."""
    run = orchestrator.flow_run_status(flow_run_id)
    ended = _run_ended(run, flow_run_id)
    if ended is None and run is not None:
        ended = _end_dead_run(orchestrator, flow_run_id, run, settings, silent_s)
    return ended, run


def reconcile_analysis(
    analysis: Analysis, orchestrator: Orchestrator, settings: Settings, sessions: sessionmaker[Session]
) -> bool:
    """Settle one queued or running analysis against its flow run; True when the row changed."""
    if analysis.status in FINISHED or analysis.flow_run_id is None:
        return False
    silent_s = _silent_for(analysis.updated_at, analysis.heartbeat_at)
    if silent_s < settings.reconcile_after_s:
        return False
    try:
        ended, run = _settle(orchestrator, analysis.flow_run_id, settings, silent_s)
    except ServiceUnavailable as exc:
        logger.warning("cannot reconcile analysis %s: %s", analysis.id, exc)
        return False
    verdict = _analysis_verdict(analysis.id, ended, run)
    if verdict is None:
        return False
    outcome, reason = verdict
    if outcome == "cancelled":
        return cancel(sessions, analysis.id, reason)
    return fail(sessions, analysis.id, reason)


def _analysis_verdict(analysis_id: uuid.UUID, ended: Ended | None, run: FlowRunStatus | None) -> Ended | None:
    """What an analysis' row becomes when its flow run ended: failed (with how to rerun it) or
    cancelled; None while the run lives, or when it completed so recently that its hook may
    still record the results."""
    if ended is None:
        return None
    outcome, reason = ended
    if outcome == "completed":
        if run is None or run.state_age_s <= COMPLETION_GRACE_S:
            return None
        outcome, reason = (
            "failed",
            f"flow run {run.name} completed {run.state_age_s:.0f} s ago without recording the results",
        )
    if outcome == "failed":
        reason += f"; rerun it with POST /analyses/{analysis_id}/rerun"
    return outcome, reason


def reconcile_ingest_run(
    run_row: IngestRun, orchestrator: Orchestrator, settings: Settings, sessions: sessionmaker[Session]
) -> bool:
    """Settle one running ingest run whose process has gone quiet; True when the row changed."""
    if run_row.status != RunStatus.running:
        return False
    silent_s = _silent_for(run_row.started_at, run_row.heartbeat_at)
    if silent_s < settings.stale_run_after_s:
        return False
    reason = f"no heartbeat from its process for {silent_s:.0f} s (the runner or its machine died)"
    if run_row.flow_run_id is not None:
        try:
            ended, _ = _settle(orchestrator, run_row.flow_run_id, settings, silent_s)
        except ServiceUnavailable as exc:
            logger.warning("cannot reconcile ingest run %s: %s", run_row.id, exc)
            return False
        if ended is None:
            return False
        reason = ended[1] or reason
    with session_scope(sessions) as session:
        row = session.get_one(IngestRun, run_row.id, with_for_update=True)
        if row.status != RunStatus.running:
            return False
        row.status, row.error, row.finished_at = RunStatus.failed, f"ended without finishing: {reason}", utcnow()
    return True


def sweep(orchestrator: Orchestrator, settings: Settings, sessions: sessionmaker[Session]) -> int:
    """Reconcile every unfinished analysis and ingest run; how many rows changed."""
    quiet_since = utcnow() - timedelta(seconds=min(settings.reconcile_after_s, settings.stale_run_after_s))
    with sessions() as session:
        analyses = session.scalars(
            select(Analysis).where(Analysis.status.not_in(FINISHED), Analysis.updated_at < quiet_since)
        ).all()
        ingest_runs = session.scalars(select(IngestRun).where(IngestRun.status == RunStatus.running)).all()
    changed = sum(reconcile_analysis(a, orchestrator, settings, sessions) for a in analyses)
    return changed + sum(reconcile_ingest_run(r, orchestrator, settings, sessions) for r in ingest_runs)


class Sweeper:
    """Runs :func:`sweep` every few seconds in a daemon thread, for the life of the API process."""

    def __init__(self, orchestrator: Orchestrator, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.interval_s = min(MAX_SWEEP_INTERVAL_S, max(1.0, settings.stale_run_after_s / 3))
        self._args = (orchestrator, settings, sessions)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reconcile-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if changed := sweep(*self._args):
                    logger.info("reconciled %d run(s) that ended without their hooks", changed)
            except (SQLAlchemyError, ServiceUnavailable) as exc:
                logger.warning("reconcile sweep skipped: %s", str(exc).splitlines()[0])
