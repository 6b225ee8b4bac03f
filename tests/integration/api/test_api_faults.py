"""Faults around the orchestrator, through the API on Prefect's harness: a runner that died
with its flow run, reruns in place, failed idempotent retries, per-user limits of unfinished
work, and a Prefect that accepts connections but never answers."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.states import Crashed, Running
from sqlalchemy import func, select, update

from api.orchestrator import Orchestrator, PrefectUnreachable
from api.reconcile import sweep
from cropai.analysis_runs import claim
from cropai.config import Settings
from cropai.db import Analysis, AnalysisStatus, IngestRun, Role, RunStatus, utcnow
from cropai.services import services
from tests.api_fixtures import make_client, new_account
from tests.integration.api.test_api_analyses import REQUEST, flow_run, submit

DEADLINE_S = 10.0


def force_state(flow_run_id: str, state: State[Any]) -> None:
    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(uuid.UUID(flow_run_id), state, force=True)


def sweep_until(settings: Settings, done: Callable[[], bool]) -> None:
    """Sweep as the API's background thread does, until ``done()`` holds."""
    orchestrator, sessions = Orchestrator(settings), services(settings).sessions
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "the sweep did not settle the run"
        sweep(orchestrator, settings, sessions)
        time.sleep(0.2)


def analysis(settings: Settings, analysis_id: str) -> Analysis:
    with services(settings).sessions() as session:
        return session.get_one(Analysis, uuid.UUID(analysis_id))


def test_a_running_analysis_whose_runner_died_is_crashed_and_failed_with_the_reason(
    client: TestClient, api_app_settings: Settings
) -> None:
    settings = api_app_settings.model_copy(update={"stale_run_after_s": 0.5})
    made = submit(client, new_account(client, settings).headers)
    run_id = uuid.UUID(made["flow_run_id"])
    force_state(made["flow_run_id"], Running())
    sessions = services(settings).sessions
    assert claim(sessions, uuid.UUID(made["id"]), 1, run_id)
    with sessions.begin() as session:  # the runner was killed: no heartbeat since a minute
        session.execute(
            update(Analysis).values(
                heartbeat_at=utcnow() - timedelta(minutes=1), updated_at=utcnow() - timedelta(minutes=1)
            )
        )
    sweep_until(settings, lambda: analysis(settings, made["id"]).status == AnalysisStatus.failed)
    reason = analysis(settings, made["id"]).status_reason or ""
    assert "no heartbeat" in reason and f"/analyses/{made['id']}/rerun" in reason
    assert flow_run(made["flow_run_id"]).state.is_crashed()


def test_a_live_analysis_with_a_fresh_heartbeat_is_left_alone(client: TestClient, api_app_settings: Settings) -> None:
    settings = api_app_settings.model_copy(update={"stale_run_after_s": 60.0})
    made = submit(client, new_account(client, settings).headers)
    force_state(made["flow_run_id"], Running())
    assert claim(services(settings).sessions, uuid.UUID(made["id"]), 1, uuid.UUID(made["flow_run_id"]))
    assert sweep(Orchestrator(settings), settings, services(settings).sessions) == 0
    assert analysis(settings, made["id"]).status == AnalysisStatus.running


def test_an_ingest_run_whose_process_died_is_failed(api_app_settings: Settings, client: TestClient) -> None:
    settings = api_app_settings.model_copy(update={"stale_run_after_s": 0.5})
    admin = new_account(client, settings, Role.admin)
    started = client.post("/ingest", json={"source": "store:inbox/"}, headers=admin.headers)
    assert started.status_code == 202, started.text
    flow_run_id = started.json()["flow_run_id"]
    force_state(flow_run_id, Running())
    with services(settings).sessions.begin() as session:
        session.add(
            IngestRun(
                source="store:inbox/", flow_run_id=uuid.UUID(flow_run_id), started_at=utcnow() - timedelta(minutes=5)
            )
        )

    def failed() -> bool:
        with services(settings).sessions() as session:
            return session.scalar(select(IngestRun.status)) == RunStatus.failed

    sweep_until(settings, failed)
    with services(settings).sessions() as session:
        assert "no heartbeat" in (session.scalar(select(IngestRun.error)) or "")
    assert flow_run(flow_run_id).state.is_crashed()


def test_rerun_starts_a_failed_analysis_again_in_place(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    made = submit(client, analyst.headers)
    assert client.post(f"/analyses/{made['id']}/rerun", headers=analyst.headers).status_code == 409  # still queued
    force_state(made["flow_run_id"], Crashed(message="runner killed"))
    assert client.get(f"/analyses/{made['id']}", headers=analyst.headers).json()["status"] == "failed"
    rerun = client.post(f"/analyses/{made['id']}/rerun", headers=analyst.headers)
    assert rerun.status_code == 202, rerun.text
    again = rerun.json()
    assert again["id"] == made["id"] and again["status"] == "queued" and again["status_reason"] is None
    assert again["flow_run_id"] != made["flow_run_id"]
    assert flow_run(again["flow_run_id"]).parameters == {"analysis_id": made["id"], "attempt": 2}


def test_an_idempotency_key_naming_a_failed_analysis_starts_a_new_attempt(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    headers = {**analyst.headers, "Idempotency-Key": "order-77"}
    first = submit(client, headers)
    force_state(first["flow_run_id"], Crashed(message="runner killed"))
    client.get(f"/analyses/{first['id']}", headers=analyst.headers)  # reconciled: failed
    second = submit(client, headers)
    assert second["id"] == first["id"] and second["status"] == "queued"
    assert flow_run(second["flow_run_id"]).parameters["attempt"] == 2


def test_unfinished_analyses_per_user_are_limited(api_app_settings: Settings) -> None:
    limited = api_app_settings.model_copy(update={"active_analyses_per_user": 2})
    with make_client(limited) as client:
        alice, bob = new_account(client, limited), new_account(client, limited)
        first, _ = submit(client, alice.headers), submit(client, alice.headers)
        refused = client.post("/analyses", json=REQUEST, headers=alice.headers)
        assert refused.status_code == 429 and "2 queued or running" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) > 0
        assert client.post("/analyses", json=REQUEST, headers=bob.headers).status_code == 202
        client.delete(f"/analyses/{first['id']}", headers=alice.headers)
        assert client.post("/analyses", json=REQUEST, headers=alice.headers).status_code == 202


@pytest.fixture
def frozen_prefect() -> Iterator[str]:
    """An address that accepts TCP connections and never answers, as a SIGSTOPped server does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"


def test_a_frozen_prefect_gets_a_503_at_its_deadline_then_at_once(
    api_app_settings: Settings, frozen_prefect: str
) -> None:
    frozen = api_app_settings.model_copy(
        update={"prefect_api_url": frozen_prefect, "orchestrator_deadline_s": 1.0, "orchestrator_cooldown_s": 60.0}
    )
    with make_client(frozen) as client:
        analyst = new_account(client, frozen)
        first = client.post("/analyses", json=REQUEST, headers=analyst.headers)
        assert first.status_code == 503 and "did not answer within 1 s" in first.json()["detail"]
        second = client.post("/analyses", json=REQUEST, headers=analyst.headers)
        assert second.status_code == 503 and "not asking again" in second.json()["detail"]
        assert client.get("/healthz").status_code == 200
    with services(frozen).sessions() as session:  # the first request never reached a deployment
        assert session.scalar(select(func.count()).select_from(Analysis)) == 0


@pytest.fixture
def busy_prefect() -> Iterator[tuple[str, list[int]]]:
    """A stand-in Prefect that answers 503 (its database busy) until told otherwise; its URL and
    the statuses it will give, first to last (then 200)."""
    import http.server
    import threading

    answers: list[int] = []

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answers.pop(0) if answers else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api", answers
    finally:
        server.shutdown()


def test_a_busy_prefect_is_asked_again_within_the_deadline(
    settings: Settings, busy_prefect: tuple[str, list[int]]
) -> None:
    url, answers = busy_prefect
    orchestrator = Orchestrator(settings.model_copy(update={"prefect_api_url": url, "orchestrator_deadline_s": 5.0}))
    answers.extend([503, 503, 429])
    orchestrator.check()  # answered on the fourth try
    answers.extend([503] * 1000)
    with pytest.raises(PrefectUnreachable, match="HTTP 503"):
        orchestrator.check()
