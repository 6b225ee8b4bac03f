"""Faults an operator meets, on the running stack: the flow runner killed in the middle of
an analysis, analyses cancelled before their flow runs start, and a frozen Prefect server.
Each ends somewhere a user can see, and nothing comes back from the dead."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from cropai.cli.supervisor import signal_group
from tests.analysis_fixtures import AOI, END, START
from tests.e2e.conftest import POLL_DEADLINE_S, Season, System, new_user
from tests.e2e.test_whole_system import final, submit

FINISHED = ("completed", "failed", "cancelled")
FINAL_PREFECT_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@pytest.fixture(scope="module")
def analyst(admin: dict[str, str], http: httpx.Client, season: Season) -> dict[str, str]:
    return new_user(http, admin, "on-call@example.org", "analyst")


def program_pid(system: System, name: str) -> int:
    """The process group of the newest instance of one of the stack's programs."""
    return int(re.findall(rf"^ready\s+{name}\s.*pid (\d+) ", system.printed(), re.MULTILINE)[-1])


def prefect_state(system: System, flow_run_id: str) -> str:
    return prefect_get(system, f"/flow_runs/{flow_run_id}")["state"]["type"]


def prefect_get(system: System, path: str) -> dict:
    """A read of Prefect's API, asked again while its busy SQLite database makes it answer 503."""
    deadline = time.monotonic() + 60
    while (response := httpx.get(f"{system.ports.prefect_api}{path}", timeout=30)).status_code == 503:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.5)
    return response.raise_for_status().json()


def poll(condition: Callable[[], object], what: str, system: System) -> None:
    deadline = time.monotonic() + POLL_DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen:\n{system.printed()}"
        time.sleep(1)


def test_killed_runner_fails_the_analysis_with_the_reason_and_a_rerun_completes_it(
    system: System, http: httpx.Client, analyst: dict[str, str]
) -> None:
    made = submit(http, analyst, "runner killed")
    poll(
        lambda: http.get(f"/analyses/{made['id']}", headers=analyst).json()["status"] == "running",
        "the analysis starting",
        system,
    )
    signal_group(program_pid(system, "deployments"), signal.SIGKILL)  # the runner and its flow run's process
    failed = final(http, analyst, made["id"], system)
    assert failed["status"] == "failed", failed
    assert "no heartbeat" in failed["status_reason"] and "/rerun" in failed["status_reason"]
    assert prefect_state(system, made["flow_run_id"]) == "CRASHED"
    assert "exited   deployments" in system.printed()  # cropai up restarted the runner

    rerun = http.post(f"/analyses/{made['id']}/rerun", headers=analyst)
    assert rerun.status_code == 202, rerun.text
    done = final(http, analyst, made["id"], system)
    assert done["status"] == "completed" and done["id"] == made["id"], done


def test_analyses_cancelled_before_their_flow_runs_start_stay_cancelled(
    system: System, http: httpx.Client, analyst: dict[str, str]
) -> None:
    made = [submit(http, analyst, f"cancelled early {i}") for i in range(4)]
    for analysis in made:
        cancelled = http.delete(f"/analyses/{analysis['id']}", headers=analyst)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    poll(
        lambda: all(prefect_state(system, a["flow_run_id"]) in FINAL_PREFECT_STATES for a in made),
        "every cancelled flow run ending",
        system,
    )
    for analysis in made:
        assert prefect_state(system, analysis["flow_run_id"]) == "CANCELLED"
        assert http.get(f"/analyses/{analysis['id']}", headers=analyst).json()["status"] == "cancelled"


def test_a_frozen_prefect_gets_quick_503s_and_no_abandoned_submission_runs_later(
    system: System, http: httpx.Client, analyst: dict[str, str]
) -> None:
    prefect = program_pid(system, "prefect-server")
    keys = [f"frozen-{i}" for i in range(8)]  # fewer than the analyst's limit of unfinished analyses

    def post(key: str) -> httpx.Response:
        return http.post(
            "/analyses",
            headers={**analyst, "Idempotency-Key": key},
            json={
                "name": key,
                "aoi": AOI,
                "start_date": str(START),
                "end_date": str(END),
            },
        )

    signal_group(prefect, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(len(keys)) as pool:
            answers = list(pool.map(post, keys))
            assert http.get("/healthz").status_code == 200  # the API still answers meanwhile
    finally:
        signal_group(prefect, signal.SIGCONT)
    assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers)

    time.sleep(15)  # nothing should happen now: time for Prefect to act on what it got while frozen
    listed = http.get("/analyses?limit=500", headers=analyst).json()["items"]
    abandoned = [a for a in listed if a["name"] in keys]  # deleted when Prefect never got the request
    assert all(a["status"] == "failed" and "not started" in a["status_reason"] for a in abandoned), abandoned
    prefect_get(system, "/deployments/name/analyze/analyze")  # Prefect answers again, its backlog done
    again = post(keys[0])  # the client retries with its key once Prefect is back
    assert again.status_code == 202, again.text
    assert final(http, analyst, again.json()["id"], system)["status"] == "completed"


def test_the_analyze_deployment_is_served_with_its_concurrency_limit(system: System) -> None:
    served = prefect_get(system, "/deployments/name/analyze/analyze")
    assert served["global_concurrency_limit"]["limit"] == int(system.env["CROPAI_ANALYSIS_CONCURRENCY"])
