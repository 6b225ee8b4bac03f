"""The whole system as its operators run it without Docker: `cropai up` on free loopback
ports (a Prefect server, a Dask scheduler and two workers, the deployment server, the
API on uvicorn), on PostgreSQL and the S3 server, driven over HTTP only.

One stack serves every end-to-end module (the web viewer's first, the working day's
last, which ends with Ctrl-C), with a season of scenes ingested through the API."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio

from cropai.cli.loopback import free_port
from cropai.cli.supervisor import Ports, signal_group
from cropai.config import Settings
from cropai.synth import SyntheticSet, SynthSpec, synthesize
from tests.analysis_fixtures import AREA
from tests.conftest import S3_KEYS, postgres_schema, s3_settings

START_DEADLINE_S = 300
POLL_DEADLINE_S = 420
STOP_DEADLINE_S = 90
# `cropai up --redis` when a redis-server is installed (CI installs it): the API shares its limits there.
REDIS = shutil.which("redis-server") is not None or bool(os.environ.get("CI"))
ADMIN = "admin@example.org"
PASSWORD = "an-end-to-end-password"


@dataclass(frozen=True)
class System:
    ports: Ports
    env: dict[str, str]  # what an operator's shell would have set
    output: Path  # everything `cropai up` printed
    process: subprocess.Popen
    s3: Minio
    bucket: str
    home: Path

    def cli(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        """Run a `cropai` command as an operator would, next to the running stack."""
        result = subprocess.run(
            [sys.executable, "-m", "cropai.cli", *args],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def printed(self) -> str:
        return self.output.read_text()

    def program_pids(self) -> list[int]:
        """Every process `cropai up` reported ready (restarted ones included)."""
        return [int(pid) for pid in re.findall(r"^ready .* pid (\d+) ", self.printed(), re.MULTILINE)]


@pytest.fixture(scope="session")
def system(postgres_server: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    home = tmp_path_factory.mktemp("e2e")
    bucket = f"e2e-{os.getpid()}"
    with postgres_schema(postgres_server) as database_url:
        # A base map the browser cannot reach: the viewer must fall back to a plain background.
        nowhere = f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"
        # Faults are noticed within seconds here: a silent run is dead after 20 s, Prefect gets 3 s.
        quick: dict[str, Any] = {
            "stale_run_after_s": 20,
            "reconcile_after_s": 5,
            "orchestrator_deadline_s": 3,
            "orchestrator_cooldown_s": 5,
        }
        settings = s3_settings(Settings(home=home, basemap_url=nowhere, _env_file=None, **quick), s3_endpoint, bucket)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CROPAI_", "PREFECT_"))}
        env.update(settings.model_copy(update={"database_url": database_url}).as_environment())
        env.update(COLUMNS="200", PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
        ports = Ports.free()
        output = home / "cropai-up.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cropai.cli",
                    "up",
                    "--workers",
                    "2",
                    "--no-schedules",
                    "--prefect-port",
                    str(ports.prefect),
                    "--api-port",
                    str(ports.api),
                    "--scheduler-port",
                    str(ports.scheduler),
                    "--dashboard-port",
                    str(ports.dashboard),
                    *(["--redis"] if REDIS else []),  # the API's limits and caches on a Redis of the stack
                ],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        s3 = Minio(s3_endpoint, S3_KEYS["s3_access_key"], S3_KEYS["s3_secret_key"], secure=False)
        running = System(ports, env, output, process, s3, bucket, home)
        try:
            _wait_until_up(running)
            yield running
        finally:
            stop(running)
            for pid in running.program_pids():  # whatever a failed stop left behind
                signal_group(pid, signal.SIGKILL)


def _wait_until_up(system: System) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while "Crop AI is up" not in system.printed():
        if system.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"cropai up did not come up:\n{system.printed()}\n{_logs(system)}")
        time.sleep(0.5)


def stop(system: System) -> int:
    """Ctrl-C, as an operator would press it; the exit status of `cropai up`."""
    if system.process.poll() is None:
        system.process.send_signal(signal.SIGINT)
        try:
            system.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            signal_group(system.process.pid, signal.SIGKILL)
            system.process.wait()
    return system.process.returncode


def _logs(system: System) -> str:
    logs = sorted((system.home / "logs").glob("*.log"))
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs)


@pytest.fixture(scope="session")
def http(system: System) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.ports.api_url, timeout=60) as client:
        yield client


def login(http: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = http.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def new_user(http: httpx.Client, admin: dict[str, str], email: str, role: str) -> dict[str, str]:
    """An account made by the admin over HTTP; its auth headers."""
    created = http.post("/users", headers=admin, json={"email": email, "password": PASSWORD, "role": role})
    assert created.status_code == 201, created.text
    return login(http, email)


@pytest.fixture(scope="session")
def admin(system: System, http: httpx.Client) -> dict[str, str]:
    """The first admin, made with the CLI (the only way to make one); their auth headers."""
    system.cli("users", "create", ADMIN, "--admin", CROPAI_NEW_USER_PASSWORD=PASSWORD)
    return login(http, ADMIN)


@dataclass(frozen=True)
class Season:
    made: SyntheticSet
    ingest_run: dict  # the ingestion run as GET /ingest/runs reports it


@pytest.fixture(scope="session")
def season(
    system: System, http: httpx.Client, admin: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Season:
    """A provider drops a season of scenes into the store's inbox; the admin ingests them."""
    made = synthesize(SynthSpec(AREA, date(2025, 3, 25), date(2025, 10, 5), seed=9), tmp_path_factory.mktemp("season"))
    for scene in made.scenes:
        system.s3.fput_object(system.bucket, f"inbox/{scene.path.name}", str(scene.path))
    started = http.post("/ingest", headers=admin, json={"source": "store:inbox/"})
    assert started.status_code == 202, started.text
    flow_run_id = started.json()["flow_run_id"]
    deadline = time.monotonic() + POLL_DEADLINE_S
    while time.monotonic() < deadline:
        runs = http.get("/ingest/runs", headers=admin).json()["items"]
        ours = [r for r in runs if r["flow_run_id"] == flow_run_id and r["status"] != "running"]
        if ours:
            return Season(made, ours[0])
        time.sleep(1)
    raise AssertionError(f"ingestion run {flow_run_id} did not finish:\n{system.printed()}")
