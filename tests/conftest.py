"""Shared fixtures: isolated settings, a PostgreSQL schema per test, a real S3 API
server on loopback, and the store under test on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, make_url, text

from cropai.cli.loopback import free_port, wait_for_http
from cropai.config import Settings
from cropai.db import upgrade_database
from cropai.services import Services, services
from cropai.storage import LocalStore, ObjectStore, S3Store, open_store
from tests.tcp_proxy import TcpProxy

TESTS = Path(__file__).parent
POSTGRES_URL = os.environ.get("CROPAI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# On CI this turns "PostgreSQL is not there" from a skip into a failure.
REQUIRE_POSTGRES = os.environ.get("CROPAI_REQUIRE_POSTGRES") == "1"
S3_KEYS = {"s3_access_key": "cropai-test", "s3_secret_key": "cropai-test-secret"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from its folder: tests/unit, tests/integration, tests/e2e."""
    for item in items:
        tier = Path(item.fspath).relative_to(TESTS).parts[0]
        if tier in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's CROPAI_* variables and .env out of the tests."""
    for name in list(os.environ):
        if name.startswith("CROPAI_") and name.removeprefix("CROPAI_").lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults under a fresh home folder."""
    return Settings(home=tmp_path / "home", _env_file=None)


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL URL tests may use; skipped (or failed on CI) when it is not reachable."""
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose connections live in a schema of their own, dropped after the test."""
    with postgres_schema(postgres_server) as url:
        yield url


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A new schema on the server, as a URL that selects it; dropped on exit."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        from cropai.services import dispose_services

        dispose_services()  # pooled connections would otherwise pile up test after test
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_settings(postgres_url: str, settings: Settings) -> Settings:
    """Settings pointing at an empty PostgreSQL catalogue (a schema of its own) over a folder store."""
    return settings.model_copy(update={"database_url": postgres_url})


@pytest.fixture
def postgres_catalogue(postgres_settings: Settings) -> Services:
    """The production catalogue, migrated: for tests whose point is not the database kind."""
    svc = services(postgres_settings)
    upgrade_database(svc.engine)
    return svc


@pytest.fixture(params=["sqlite", "postgresql"])
def database_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Settings pointing at an empty database of each supported kind."""
    if request.param == "sqlite":
        return settings
    url = request.getfixturevalue("postgres_url")
    return settings.model_copy(update={"database_url": url})


@pytest.fixture
def postgres_proxy(postgres_server: str) -> Iterator[TcpProxy]:
    """A TCP proxy in front of PostgreSQL that a test can cut and restore (a database outage)."""
    server = make_url(postgres_server)
    with TcpProxy(server.host or "127.0.0.1", server.port or 5432) as running:
        yield running


# --- S3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real S3 API server (moto's) running as a separate process."""
    port = free_port()
    log = (tmp_path_factory.mktemp("s3") / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def s3_settings(settings: Settings, endpoint: str, bucket: str) -> Settings:
    return settings.model_copy(
        update={
            "storage_url": f"s3://{bucket}",
            "s3_endpoint": endpoint,
            "s3_secure": False,
            "s3_access_key": S3_KEYS["s3_access_key"],
            "s3_secret_key": SecretStr(S3_KEYS["s3_secret_key"]),
        }
    )


@pytest.fixture
def s3_store(settings: Settings, s3_endpoint: str) -> S3Store:
    """A new, empty bucket on the S3 server."""
    s3 = open_store(s3_settings(settings, s3_endpoint, f"test-{uuid.uuid4().hex[:12]}"))
    assert isinstance(s3, S3Store)
    s3.ensure_bucket()
    return s3


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, settings: Settings) -> ObjectStore:
    """An empty store of each backend: a folder, or a new bucket on the S3 server."""
    if request.param == "local":
        return LocalStore(settings.home / "store")
    return request.getfixturevalue("s3_store")


# --- Prefect ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """Prefect's test harness: a temporary Prefect server (SQLite) for the whole session."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def flow_settings(monkeypatch: pytest.MonkeyPatch, database_settings: Settings, prefect_api: str) -> Settings:
    """Settings exported as CROPAI_* variables, as a flow run reads them, on each database."""
    export_settings(monkeypatch, database_settings)
    from cropai.db import make_engine, upgrade_database

    upgrade_database(make_engine(database_settings))
    return database_settings


def export_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in settings.as_environment().items():
        monkeypatch.setenv(name, value)
