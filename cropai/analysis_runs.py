"""Which flow run owns an analysis, and the status moves of its run: the one module that
holds the rules of an analysis' status.

Each start of an analysis is an *attempt* (1, 2, ...): a rerun in place adds one. A flow
run carries the attempt it was started for and may work on the analysis only after
claiming it: the row must be queued for that attempt, or already owned by this very flow
run, either running (Prefect restarting its process) or finished when an operator retries
the run from the Prefect UI. So a flow run Prefect created late (after the API had given up
on it), one that outlived its cancellation, or one of an older attempt finds nothing to do,
and stops without touching the row.

Status moves: queued -> running (``claim``, ``start``) -> completed (``finish``, once its
outputs are recorded), or failed / cancelled from queued or running (``fail``, ``cancel``).
A finished analysis (completed, failed, cancelled) keeps its status: a late state hook, a
progress write or a flow run that outlived its cancellation cannot revive it. Only a rerun
(``reopen``) takes a failed or cancelled one back to queued. Each move says whether it applied.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Update, and_, func, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from cropai.db import Analysis, AnalysisStatus, retry_transient, session_scope, utcnow
from cropai.errors import InvalidInput

FINISHED = (AnalysisStatus.completed, AnalysisStatus.failed, AnalysisStatus.cancelled)
RERUNNABLE = (AnalysisStatus.failed, AnalysisStatus.cancelled)


@retry_transient
def claim(
    sessions: sessionmaker[Session],
    /,
    analysis_id: uuid.UUID,
    attempt: int,
    flow_run_id: uuid.UUID,
    retried: bool = False,
) -> bool:
    """Mark the analysis running under ``flow_run_id``; False when this flow run may not work on it.

    ``retried``: this flow run has run before (Prefect's run count above 1), so an operator's
    retry may take back the analysis it owned even after it finished."""
    owner_may_resume = Analysis.status == AnalysisStatus.running if not retried else true()
    return _applied(
        sessions,
        update(Analysis)
        .where(
            Analysis.id == analysis_id,
            Analysis.attempt == attempt,
            or_(
                Analysis.status == AnalysisStatus.queued,
                and_(Analysis.flow_run_id == flow_run_id, owner_may_resume),
            ),
        )
        .values(
            status=AnalysisStatus.running,
            status_reason=None,
            flow_run_id=flow_run_id,
            finished_at=None,
            started_at=func.coalesce(Analysis.started_at, utcnow()),
            heartbeat_at=utcnow(),
        ),
    )


def owned_by(sessions: sessionmaker[Session], analysis_id: uuid.UUID, flow_run_id: uuid.UUID) -> bool:
    """Whether the analysis is (still) worked on by this flow run."""
    with sessions() as session:
        owner = session.scalar(select(Analysis.flow_run_id).where(Analysis.id == analysis_id))
    return owner == flow_run_id


@retry_transient
def start(
    sessions: sessionmaker[Session],
    /,
    analysis_id: uuid.UUID,
    model_version_id: int,
    batches_total: int,
    input_scenes: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
) -> bool:
    """Running, with the model version, the number of batches its plan found, the exact
    scene versions it reads and the warnings its result will carry."""
    return _move(
        sessions,
        analysis_id,
        Analysis.status.not_in(FINISHED),
        status=AnalysisStatus.running,
        status_reason=None,
        started_at=func.coalesce(Analysis.started_at, utcnow()),
        model_version_id=model_version_id,
        batches_total=batches_total,
        input_scenes=input_scenes,
        warnings=warnings or [],
    )


@retry_transient
def progress(sessions: sessionmaker[Session], /, analysis_id: uuid.UUID, batches_done: int) -> bool:
    """Count the finished batches of a running analysis; False once it is not running (cancelled,
    say, or queued again for a newer attempt): its flow run should stop then."""
    return _move(sessions, analysis_id, Analysis.status == AnalysisStatus.running, batches_done=batches_done)


@retry_transient
def record_outputs(
    sessions: sessionmaker[Session],
    /,
    analysis_id: uuid.UUID,
    map_key: str,
    quicklook_key: str,
    *,
    input_check: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> bool:
    """Note where a running analysis' crop map and quicklook are in the store, how its inputs
    compared with its model's training inputs, and the warnings its result carries."""
    return _move(
        sessions,
        analysis_id,
        Analysis.status == AnalysisStatus.running,
        map_key=map_key,
        quicklook_key=quicklook_key,
        input_check=input_check,
        **({"warnings": warnings} if warnings is not None else {}),
    )


@retry_transient
def finish(sessions: sessionmaker[Session], /, analysis_id: uuid.UUID) -> bool:
    """Completed: only a running analysis whose outputs are recorded, so that a completed one
    always has its map and quicklook."""
    return _move(
        sessions,
        analysis_id,
        and_(Analysis.status == AnalysisStatus.running, Analysis.map_key.is_not(None)),
        status=AnalysisStatus.completed,
        status_reason=None,
        finished_at=utcnow(),
    )


@retry_transient
def fail(sessions: sessionmaker[Session], /, analysis_id: uuid.UUID, reason: str) -> bool:
    """Failed with ``reason``, unless it had finished already."""
    return _end(sessions, analysis_id, AnalysisStatus.failed, reason)


@retry_transient
def cancel(sessions: sessionmaker[Session], /, analysis_id: uuid.UUID, reason: str) -> bool:
    """Cancelled with ``reason``, unless it had finished already."""
    return _end(sessions, analysis_id, AnalysisStatus.cancelled, reason)


def _end(sessions: sessionmaker[Session], analysis_id: uuid.UUID, status: AnalysisStatus, reason: str) -> bool:
    return _move(
        sessions,
        analysis_id,
        Analysis.status.not_in(FINISHED),
        status=status,
        status_reason=reason,
        finished_at=utcnow(),
    )


def _move(sessions: sessionmaker[Session], analysis_id: uuid.UUID, allowed: ColumnElement[bool], **values: Any) -> bool:
    """Set ``values`` on the analysis if its row is ``allowed`` to move, in one statement (so that
    two writers, a cancel and a finish say, cannot both apply)."""
    return _applied(sessions, update(Analysis).where(Analysis.id == analysis_id, allowed).values(**values))


def _applied(sessions: sessionmaker[Session], statement: Update) -> bool:
    """Run an UPDATE of one analysis; whether it changed the row."""
    with session_scope(sessions) as session:
        return cast("CursorResult[Any]", session.execute(statement)).rowcount == 1


@retry_transient
def record_flow_run(
    sessions: sessionmaker[Session], /, analysis_id: uuid.UUID, attempt: int, flow_run_id: uuid.UUID
) -> None:
    """Note the flow run started for an attempt, unless that run has claimed the row already."""
    with session_scope(sessions) as session:
        session.execute(
            update(Analysis)
            .where(Analysis.id == analysis_id, Analysis.attempt == attempt, Analysis.flow_run_id.is_(None))
            .values(flow_run_id=flow_run_id)
        )


def reopen(sessions: sessionmaker[Session], analysis_id: uuid.UUID) -> int:
    """Queue a failed or cancelled analysis again as its next attempt; returns the attempt.

    Its finished batches stay in the store, so the next flow run recomputes only the rest."""
    with session_scope(sessions) as session:
        analysis = session.get_one(Analysis, analysis_id, with_for_update=True)
        if analysis.status not in RERUNNABLE:
            raise InvalidInput(
                f"analysis {analysis_id} is {analysis.status.value}: only a failed or cancelled analysis can be rerun"
            )
        analysis.attempt += 1
        analysis.status = AnalysisStatus.queued
        analysis.status_reason = None
        analysis.flow_run_id = None
        analysis.heartbeat_at = None
        analysis.finished_at = None
        analysis.batches_done = 0
        return analysis.attempt


def active_count(session: Session, owner_id: int) -> int:
    """Queued and running analyses of one owner (a limit that holds across API replicas)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Analysis)
            .where(Analysis.owner_id == owner_id, Analysis.status.not_in(FINISHED))
        )
        or 0
    )
