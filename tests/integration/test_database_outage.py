"""Bookkeeping writes while the PostgreSQL catalogue goes away for a few seconds.

The catalogue is reached through a TCP proxy on loopback; cutting the proxy drops every
connection and hangs up on new ones, as a restarting server does."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from cropai.accounts import create_user
from cropai.analysis_records import create_analysis
from cropai.analysis_runs import claim, progress
from cropai.config import Settings
from cropai.db import Analysis, IngestRun, RunStatus, retry_budget, upgrade_database
from cropai.errors import ServiceUnavailable
from cropai.ingest import finish_run, start_run
from cropai.services import Services, services
from tests.api_fixtures import SQUARE
from tests.conftest import postgres_schema
from tests.tcp_proxy import TcpProxy

SHORT_OUTAGE_S = 3.0


@pytest.fixture
def catalogue(settings: Settings, postgres_server: str, postgres_proxy: TcpProxy) -> Iterator[Services]:
    """A migrated PostgreSQL catalogue, reached only through the proxy."""
    with postgres_schema(postgres_server) as url:
        svc = services(settings.model_copy(update={"database_url": postgres_proxy.route(url)}))
        upgrade_database(svc.engine)
        yield svc


def running_analysis(svc: Services) -> uuid.UUID:
    """An analysis its flow run has claimed; leaves a pooled connection that an outage kills."""
    analysis_id = create_analysis(svc.sessions, SQUARE, date(2025, 4, 1), date(2025, 9, 30), "cropnet@latest")
    assert claim(svc.sessions, analysis_id, 1, uuid.uuid4())
    return analysis_id


def test_progress_write_lands_once_a_short_outage_ends(catalogue: Services, postgres_proxy: TcpProxy) -> None:
    analysis_id = running_analysis(catalogue)
    with postgres_proxy.outage(SHORT_OUTAGE_S):
        progress(catalogue.sessions, analysis_id, 7)
    with catalogue.sessions() as session:
        assert session.get_one(Analysis, analysis_id).batches_done == 7


def test_write_gives_up_after_its_retry_budget_naming_the_database(
    catalogue: Services, postgres_proxy: TcpProxy
) -> None:
    analysis_id = running_analysis(catalogue)
    with postgres_proxy.outage(60.0), retry_budget(1.0), pytest.raises(ServiceUnavailable) as raised:
        progress(catalogue.sessions, analysis_id, 7)
    message = str(raised.value)
    assert f"127.0.0.1:{postgres_proxy.port}" in message and "CROPAI_DATABASE_URL" in message, message


def test_ingest_run_is_closed_once_a_short_outage_ends(catalogue: Services, postgres_proxy: TcpProxy) -> None:
    run_id = start_run(catalogue.sessions, "store:inbox/")
    with postgres_proxy.outage(SHORT_OUTAGE_S):
        finish_run(catalogue.sessions, run_id, [])
    with catalogue.sessions() as session:
        assert session.get_one(IngestRun, run_id).status == RunStatus.completed


def test_a_refused_write_is_not_retried(catalogue: Services, caplog: pytest.LogCaptureFixture) -> None:
    owner = create_user(catalogue.sessions, f"{uuid.uuid4().hex[:8]}@example.org", "a-long-test-password")
    create_analysis(
        catalogue.sessions,
        SQUARE,
        date(2025, 4, 1),
        date(2025, 9, 30),
        "cropnet@latest",
        owner_id=owner.id,
        idempotency_key="once",
    )
    with caplog.at_level(logging.WARNING, logger="cropai.db"), pytest.raises(IntegrityError):
        create_analysis(
            catalogue.sessions,
            SQUARE,
            date(2025, 4, 1),
            date(2025, 9, 30),
            "cropnet@latest",
            owner_id=owner.id,
            idempotency_key="once",
        )
    assert not [record for record in caplog.records if "retry" in record.getMessage()]
