"""Building blocks of the API tests: an app on PostgreSQL, users of each role with
their auth headers, and registered (but unserved) analysis, ingest and train deployments."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from cropai.accounts import create_user
from cropai.cli.loopback import free_port, wait_for_http
from cropai.config import Settings
from cropai.db import Role, upgrade_database
from cropai.services import services

PASSWORD = "a-long-test-password"
# Registered with Prefect but never served: flow runs stay Scheduled, which is what tests
# of submission, cancellation and reconciliation want (and no runner picks them up).
UNSERVED_DEPLOYMENT = "analyze/api-tests-unserved"
UNSERVED_INGEST = "ingest_scenes/api-tests-unserved"
UNSERVED_TRAIN = "train/api-tests-unserved"
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[1.60, 48.20], [1.64, 48.20], [1.64, 48.22], [1.60, 48.22], [1.60, 48.20]]],
}


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    headers: dict[str, str]


def api_settings(settings: Settings, database_url: str, prefect_api_url: str = "", **overrides: object) -> Settings:
    return settings.model_copy(
        update={
            "database_url": database_url,
            "prefect_api_url": prefect_api_url,
            "analyze_deployment": UNSERVED_DEPLOYMENT,
            "ingest_deployment": UNSERVED_INGEST,
            "train_deployment": UNSERVED_TRAIN,
            "reconcile_after_s": 0.0,
            **overrides,
        }
    )


def register_unserved_deployment(prefect_api_url: str) -> None:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.analyze import analyze
    from flows.ingest import ingest_scenes
    from flows.train import train

    with temporary_settings({PREFECT_API_URL: prefect_api_url}):
        for deployment in (
            analyze.to_deployment(name=UNSERVED_DEPLOYMENT.split("/")[1]),
            ingest_scenes.to_deployment(name=UNSERVED_INGEST.split("/")[1], parameters={"source": "store:inbox/"}),
            train.to_deployment(name=UNSERVED_TRAIN.split("/")[1]),
        ):
            assert isinstance(deployment, RunnerDeployment)  # called outside an event loop: not a coroutine
            deployment.apply()


def make_client(settings: Settings) -> TestClient:
    upgrade_database(services(settings).engine)
    return TestClient(create_app(settings))


def new_account(client: TestClient, settings: Settings, role: Role = Role.analyst) -> Account:
    email = f"{role.value}-{uuid.uuid4().hex[:8]}@example.org"
    user = create_user(services(settings).sessions, email, PASSWORD, role)
    return Account(user.id, email, login(client, email))


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def ensure_default_model_registered(settings: Settings) -> None:
    from models.registry import ensure_default_model

    svc = services(settings)
    ensure_default_model(svc.store, svc.sessions)


@contextmanager
def api_process(settings: Settings, log: Path) -> Iterator[tuple[str, int]]:
    """The API as `cropai api` serves it (uvicorn, one process) with ``settings``; its URL and pid."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CROPAI_")}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.serve", "--port", str(port)],
            env={**env, **settings.as_environment()},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/healthz", deadline_s=60)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
