"""Which flow run owns an analysis: attempts, claims and reruns.

Each start of an analysis is an *attempt* (1, 2, ...): a rerun in place adds one. A flow
run carries the attempt it was started for and may work on the analysis only after
claiming it: the row must be queued for that attempt, or already owned by this very flow
run, either running (Prefect restarting its process) or finished when an operator retries
the run from the Prefect UI. So a flow run Prefect created late (after the API had given up
on it), one that outlived its cancellation, or one of an older attempt finds nothing to do,
and stops without touching the row.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import FINISHED
from cropai.db import Analysis, AnalysisStatus, retry_transient, session_scope, utcnow
from cropai.errors import InvalidInput

RERUNNABLE = (AnalysisStatus.failed, AnalysisStatus.cancelled)


@retry_transient
def claim(
    sessions: sessionmaker[Session],
    analysis_id: uuid.UUID | str,
    attempt: int,
    flow_run_id: uuid.UUID,
    retried: bool = False,
) -> bool:
    """Mark the analysis running under ``flow_run_id``; False when this flow run may not work on it.

    ``retried``: this flow run has run before (Prefect's run count above 1), so an operator's
    retry may take back the analysis it owned even after it finished."""
    key = uuid.UUID(str(analysis_id))
    owner_may_resume = Analysis.status == AnalysisStatus.running if not retried else true()
    with session_scope(sessions) as session:
        claimed = session.execute(
            update(Analysis)
            .where(
                Analysis.id == key,
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
            )
        )
        return claimed.rowcount == 1


def owned_by(sessions: sessionmaker[Session], analysis_id: uuid.UUID | str, flow_run_id: uuid.UUID) -> bool:
    """Whether the analysis is (still) worked on by this flow run."""
    with sessions() as session:
        owner = session.scalar(select(Analysis.flow_run_id).where(Analysis.id == uuid.UUID(str(analysis_id))))
    return owner == flow_run_id


@retry_transient
def record_flow_run(
    sessions: sessionmaker[Session], analysis_id: uuid.UUID, attempt: int, flow_run_id: uuid.UUID
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
