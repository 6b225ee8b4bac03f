"""Which flow run may work on an analysis: claims per attempt, reruns in place, and finished
analyses that late hooks and progress writes cannot revive."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis_records import create_analysis
from cropai.analysis_runs import (
    cancel,
    claim,
    fail,
    finish,
    owned_by,
    progress,
    record_flow_run,
    record_outputs,
    reopen,
)
from cropai.config import Settings
from cropai.db import Analysis, AnalysisStatus, make_engine, session_factory, upgrade_database
from cropai.errors import InvalidInput
from tests.api_fixtures import SQUARE


@pytest.fixture
def sessions(database_settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    return session_factory(engine)


def queued(sessions: sessionmaker[Session]) -> uuid.UUID:
    from datetime import date

    return create_analysis(sessions, SQUARE, date(2025, 4, 1), date(2025, 9, 30), "cropnet@latest")


def row(sessions: sessionmaker[Session], analysis_id: uuid.UUID) -> Analysis:
    with sessions() as session:
        return session.get_one(Analysis, analysis_id)


def test_the_first_flow_run_of_an_attempt_claims_a_queued_analysis(sessions: sessionmaker[Session]) -> None:
    analysis_id, first, second = queued(sessions), uuid.uuid4(), uuid.uuid4()
    assert claim(sessions, analysis_id, 1, first)
    assert not claim(sessions, analysis_id, 1, second)  # a duplicate flow run of the same attempt
    assert claim(sessions, analysis_id, 1, first)  # Prefect retrying the owner's flow run
    claimed = row(sessions, analysis_id)
    assert claimed.status == AnalysisStatus.running and claimed.flow_run_id == first and claimed.heartbeat_at
    assert owned_by(sessions, analysis_id, first) and not owned_by(sessions, analysis_id, second)


def test_a_late_flow_run_finds_its_abandoned_analysis_failed_and_does_nothing(sessions: sessionmaker[Session]) -> None:
    analysis_id = queued(sessions)
    fail(sessions, analysis_id, "not started: Prefect did not answer")
    assert not claim(sessions, analysis_id, 1, uuid.uuid4())
    assert row(sessions, analysis_id).status == AnalysisStatus.failed


def test_finished_analyses_are_not_revived_by_hooks_or_progress(sessions: sessionmaker[Session]) -> None:
    analysis_id = queued(sessions)
    cancel(sessions, analysis_id, "cancelled by someone")
    assert not progress(sessions, analysis_id, 3)
    assert not record_outputs(sessions, analysis_id, "analyses/late/cropmap.tif", "analyses/late/quicklook.png")
    assert not finish(sessions, analysis_id)
    assert not fail(sessions, analysis_id, "a late failure hook")
    kept = row(sessions, analysis_id)
    assert kept.status == AnalysisStatus.cancelled and kept.status_reason == "cancelled by someone"
    assert kept.batches_done == 0 and kept.map_key is None


def test_an_analysis_completes_only_once_its_outputs_are_recorded(sessions: sessionmaker[Session]) -> None:
    analysis_id = queued(sessions)
    assert not finish(sessions, analysis_id)  # queued: nothing ran
    assert claim(sessions, analysis_id, 1, uuid.uuid4())
    assert not finish(sessions, analysis_id)  # running, but no map yet
    assert record_outputs(sessions, analysis_id, "analyses/a/cropmap.tif", "analyses/a/quicklook.png")
    assert finish(sessions, analysis_id)
    done = row(sessions, analysis_id)
    assert done.status == AnalysisStatus.completed and done.finished_at is not None


def test_a_rerun_is_a_new_attempt_that_older_flow_runs_cannot_claim(sessions: sessionmaker[Session]) -> None:
    analysis_id, old_run, new_run = queued(sessions), uuid.uuid4(), uuid.uuid4()
    assert claim(sessions, analysis_id, 1, old_run)
    fail(sessions, analysis_id, "runner died")
    assert reopen(sessions, analysis_id) == 2
    reopened = row(sessions, analysis_id)
    assert reopened.status == AnalysisStatus.queued and reopened.flow_run_id is None and reopened.finished_at is None
    assert not claim(sessions, analysis_id, 1, old_run)
    record_flow_run(sessions, analysis_id, 2, new_run)
    assert claim(sessions, analysis_id, 2, new_run)


def test_only_failed_or_cancelled_analyses_can_be_rerun(sessions: sessionmaker[Session]) -> None:
    analysis_id = queued(sessions)
    with pytest.raises(InvalidInput, match="only a failed or cancelled"):
        reopen(sessions, analysis_id)


def test_the_api_notes_its_flow_run_unless_the_run_claimed_the_row_first(sessions: sessionmaker[Session]) -> None:
    analysis_id, fast_run = queued(sessions), uuid.uuid4()
    assert claim(sessions, analysis_id, 1, fast_run)  # the runner was quicker than the API's write
    record_flow_run(sessions, analysis_id, 1, uuid.uuid4())
    assert row(sessions, analysis_id).flow_run_id == fast_run


def test_an_operators_retry_of_the_owning_flow_run_takes_back_its_failed_analysis(
    sessions: sessionmaker[Session],
) -> None:
    analysis_id, owner = queued(sessions), uuid.uuid4()
    assert claim(sessions, analysis_id, 1, owner)
    fail(sessions, analysis_id, "batch 3 failed")
    assert not claim(sessions, analysis_id, 1, owner)  # its first run, started after the row finished
    assert claim(sessions, analysis_id, 1, owner, retried=True)  # Retry pressed in the Prefect UI
    resumed = row(sessions, analysis_id)
    assert resumed.status == AnalysisStatus.running and resumed.status_reason is None and resumed.finished_at is None
