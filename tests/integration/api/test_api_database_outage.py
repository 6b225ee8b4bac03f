"""The API while its PostgreSQL catalogue is cut off behind a TCP proxy: 503 with
Retry-After, then normal answers once the database is back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cropai.cli.loopback import free_port
from cropai.config import Settings
from tests.api_fixtures import SQUARE, Account, api_settings, ensure_default_model_registered, make_client, new_account
from tests.conftest import postgres_schema
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxied_settings(settings: Settings, postgres_server: str, postgres_proxy: TcpProxy) -> Iterator[Settings]:
    """The API's settings with its catalogue reached only through the proxy (no Prefect needed)."""
    with postgres_schema(postgres_server) as url:
        yield api_settings(settings, postgres_proxy.route(url))


@pytest.fixture
def client(proxied_settings: Settings) -> Iterator[TestClient]:
    with make_client(proxied_settings) as test_client:
        yield test_client


@pytest.fixture
def analyst(client: TestClient, proxied_settings: Settings) -> Account:
    return new_account(client, proxied_settings)


def test_unreachable_catalogue_is_a_503_asking_to_retry(
    client: TestClient, analyst: Account, postgres_proxy: TcpProxy
) -> None:
    postgres_proxy.cut()
    response = client.get("/analyses", headers=analyst.headers)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert "catalogue database cannot be reached" in response.json()["detail"]
    assert "Traceback" not in response.text


def test_api_answers_again_once_the_catalogue_is_back(
    client: TestClient, analyst: Account, postgres_proxy: TcpProxy
) -> None:
    postgres_proxy.cut()
    assert client.get("/analyses", headers=analyst.headers).status_code == 503
    postgres_proxy.restore()
    assert client.get("/analyses", headers=analyst.headers).status_code == 200


def test_every_503_asks_the_client_to_retry_later(proxied_settings: Settings) -> None:
    prefect_gone = proxied_settings.model_copy(update={"prefect_api_url": f"http://127.0.0.1:{free_port()}/api"})
    with make_client(prefect_gone) as client:
        ensure_default_model_registered(prefect_gone)
        request = {"aoi": SQUARE, "start_date": "2025-04-01", "end_date": "2025-09-30"}
        response = client.post("/analyses", json=request, headers=new_account(client, prefect_gone).headers)
    assert response.status_code == 503 and "Prefect" in response.json()["detail"], response.text
    assert response.headers["Retry-After"] == "5"
