"""Two API processes on one Redis (CROPAI_REDIS_URL), as two replicas behind a load balancer:
the login limit holds across both, a deactivation through one is refused at once by the
other, and Redis going away mid-run leaves both answering on their own, with a warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from cropai.accounts import create_user
from cropai.config import Settings
from cropai.db import Role
from cropai.services import services
from tests.api_fixtures import PASSWORD, api_process
from tests.conftest import free_port

REQUIRE_REDIS = bool(os.environ.get("CI"))


@dataclass(frozen=True)
class Replica:
    url: str
    log: Path

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return httpx.post(f"{self.url}/auth/token", data={"username": email, "password": password}, timeout=30)

    def headers(self, email: str) -> dict[str, str]:
        answer = self.login(email)
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@dataclass(frozen=True)
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (it is stopped mid-test), keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "no redis-server: install Debian's redis-server"
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
    yield RedisServer(process, port)
    process.kill()
    process.wait()


@contextmanager
def replica(settings: Settings, log: Path) -> Iterator[Replica]:
    """The API as `cropai api` serves it, in a process of its own."""
    with api_process(settings, log) as (url, _):
        yield Replica(url, log)


@pytest.fixture
def replicas(
    api_app_settings: Settings, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Replica, Replica]]:
    shared = api_app_settings.model_copy(update={"redis_url": redis_server.url, "login_attempts_per_minute": 4})
    sessions = services(api_app_settings).sessions
    create_user(sessions, "admin@example.org", PASSWORD, Role.admin)
    create_user(sessions, "analyst@example.org", PASSWORD, Role.analyst)
    with ExitStack() as stack:
        yield (
            stack.enter_context(replica(shared, tmp_path / "a.log")),
            stack.enter_context(replica(shared, tmp_path / "b.log")),
        )


def test_the_login_limit_holds_across_both_replicas(replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    for number in range(4):  # four wrong passwords, alternating: each replica saw only two
        attempt = (a, b)[number % 2].login("analyst@example.org", "wrong password")
        assert attempt.status_code == 401, attempt.text
    refused = b.login("analyst@example.org")  # the right password, but the account's minute is used up
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert a.login("analyst@example.org").status_code == 429


def test_a_deactivation_through_one_replica_is_refused_at_once_by_the_other(
    replicas: tuple[Replica, Replica], api_app_settings: Settings
) -> None:
    a, b = replicas
    analyst = b.headers("analyst@example.org")
    assert httpx.get(f"{b.url}/auth/me", headers=analyst).status_code == 200  # b caches the user now
    admin = a.headers("admin@example.org")
    user_id = httpx.get(f"{a.url}/auth/me", headers=analyst).json()["id"]
    changed = httpx.patch(f"{a.url}/users/{user_id}", headers=admin, json={"is_active": False})
    assert changed.status_code == 200, changed.text
    refused = httpx.get(f"{b.url}/auth/me", headers=analyst)  # well within b's 5 s cache
    assert refused.status_code == 401


def test_when_redis_goes_away_both_replicas_answer_alone_and_say_so(
    replicas: tuple[Replica, Replica], redis_server: RedisServer
) -> None:
    a, b = replicas
    analyst = a.headers("analyst@example.org")
    redis_server.process.kill()
    redis_server.process.wait()
    for server in (a, b):
        assert httpx.get(f"{server.url}/auth/me", headers=analyst).status_code == 200
        assert server.login("analyst@example.org").status_code == 200  # limits counted in the process
        for _ in range(4):
            server.login("analyst@example.org", "wrong password")
        assert server.login("analyst@example.org").status_code == 429  # ... and still enforced
    time.sleep(0.5)  # the log handlers flush
    for server in (a, b):
        assert "Redis at redis://127.0.0.1" in server.log.read_text() and "unreachable" in server.log.read_text()
