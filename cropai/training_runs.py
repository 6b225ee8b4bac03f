"""The status moves of a training run (``POST /models``): the one module that holds its rules.

queued (``create``, by the API) -> running (``start``, by the flow run) -> completed
(``complete``, once its version is registered) or failed (``fail``, from queued or running,
with the reason). A finished run keeps its status: a flow run Prefect created after the API
gave up on it (``fail``: "not started") finds it failed and may not start it. Each move says
whether it applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, update
from sqlalchemy.orm import Session, sessionmaker

from cropai.db import TrainingRun, TrainingStatus, retry_transient, session_scope, utcnow

if TYPE_CHECKING:
    from cropai.training_season import ParcelTraining

FINISHED = (TrainingStatus.completed, TrainingStatus.failed)
# The held-out figures a run keeps of its version's metrics (all of them are in the version's row).
HEADLINE_METRICS = ("overall_accuracy", "macro_f1", "validation_fields")


def create(
    sessions: sessionmaker[Session], owner_id: int | None, name: str, request: ParcelTraining, family: str
) -> uuid.UUID:
    """A queued run of ``request`` that registers its version under the model ``name``."""
    with session_scope(sessions) as session:
        run = TrainingRun(
            owner_id=owner_id,
            name=name,
            status=TrainingStatus.queued,
            request=request.model_dump(mode="json"),
            family=family,
        )
        session.add(run)
        session.flush()
        return run.id


@retry_transient
def record_flow_run(sessions: sessionmaker[Session], /, run_id: uuid.UUID, flow_run_id: uuid.UUID) -> None:
    """Note the flow run started for the run, unless that run has noted itself already."""
    with session_scope(sessions) as session:
        session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.flow_run_id.is_(None))
            .values(flow_run_id=flow_run_id)
        )


def discard(sessions: sessionmaker[Session], run_id: uuid.UUID) -> None:
    """Delete a run whose flow run Prefect never got: nothing is left half-written."""
    with session_scope(sessions) as session:
        session.execute(delete(TrainingRun).where(TrainingRun.id == run_id))


@retry_transient
def start(sessions: sessionmaker[Session], /, run_id: uuid.UUID, flow_run_id: uuid.UUID | None = None) -> bool:
    """Running under ``flow_run_id``: a queued run, or a running one whose flow run restarted."""
    return _move(
        sessions,
        run_id,
        TrainingRun.status.in_((TrainingStatus.queued, TrainingStatus.running)),
        status=TrainingStatus.running,
        status_reason=None,
        flow_run_id=func.coalesce(TrainingRun.flow_run_id, flow_run_id),
        started_at=func.coalesce(TrainingRun.started_at, utcnow()),
    )


@retry_transient
def complete(
    sessions: sessionmaker[Session], /, run_id: uuid.UUID, model_ref: str | None, metrics: Mapping[str, Any]
) -> bool:
    """Completed with the version it registered (``name@version``; None when it registered none)
    and its held-out scores beside the baseline's."""
    return _move(
        sessions,
        run_id,
        TrainingRun.status == TrainingStatus.running,
        status=TrainingStatus.completed,
        model_ref=model_ref,
        metrics=headline(metrics),
        finished_at=utcnow(),
    )


@retry_transient
def fail(sessions: sessionmaker[Session], /, run_id: uuid.UUID, reason: str) -> bool:
    """Failed with ``reason``, unless it had finished already."""
    return _move(
        sessions,
        run_id,
        TrainingRun.status.not_in(FINISHED),
        status=TrainingStatus.failed,
        status_reason=reason,
        finished_at=utcnow(),
    )


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A version's metrics (``models.train.HeldOutMetrics``) as a run shows them: overall accuracy,
    macro F1 and held-out fields, and the baseline's overall accuracy and macro F1."""
    baseline = metrics.get("baseline") or {}
    return {
        **{key: metrics.get(key) for key in HEADLINE_METRICS},
        "baseline": {key: baseline.get(key) for key in ("overall_accuracy", "macro_f1")},
    }


def _move(sessions: sessionmaker[Session], run_id: uuid.UUID, allowed: ColumnElement[bool], **values: Any) -> bool:
    """Set ``values`` on the run if its row is ``allowed`` to move, in one statement."""
    with session_scope(sessions) as session:
        statement = update(TrainingRun).where(TrainingRun.id == run_id, allowed).values(**values)
        return cast("CursorResult[Any]", session.execute(statement)).rowcount == 1
