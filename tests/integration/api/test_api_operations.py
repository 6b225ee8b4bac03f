"""What an operator relies on: health and readiness, metrics, request ids, CORS, the
admin panel, and a light process."""

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from cropai.config import Settings
from cropai.db import Role
from tests.api_fixtures import PASSWORD, make_client, new_account
from tests.conftest import free_port


def test_healthz_answers_without_credentials(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


MONITORING_TOKEN = "a-monitoring-token-for-tests"


@pytest.fixture
def monitored(api_app_settings: Settings) -> Iterator[TestClient]:
    """The API with a monitoring token set."""
    with make_client(api_app_settings.model_copy(update={"monitoring_token": SecretStr(MONITORING_TOKEN)})) as client:
        yield client


MONITOR = {"Authorization": f"Bearer {MONITORING_TOKEN}"}


def test_readyz_tells_anonymous_callers_only_whether_it_is_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_readyz_shows_its_checks_to_the_monitoring_token_and_admins(
    monitored: TestClient, api_app_settings: Settings
) -> None:
    admin, analyst = new_account(monitored, api_app_settings, Role.admin), new_account(monitored, api_app_settings)
    every_check_ok = {"database": "ok", "store": "ok", "prefect": "ok", "deployments": "ok"}
    assert monitored.get("/readyz", headers=MONITOR).json() == {"status": "ready", "checks": every_check_ok}
    assert monitored.get("/readyz", headers=admin.headers).json()["checks"] == every_check_ok
    assert monitored.get("/readyz", headers=analyst.headers).json() == {"status": "ready"}
    assert monitored.get("/readyz", headers={"Authorization": "Bearer not-the-token"}).status_code == 401


def test_readyz_names_what_is_down_to_monitoring_only(api_app_settings: Settings) -> None:
    down = api_app_settings.model_copy(
        update={
            "prefect_api_url": f"http://127.0.0.1:{free_port()}/api",
            "monitoring_token": SecretStr(MONITORING_TOKEN),
        }
    )
    with make_client(down) as client:
        anonymous = client.get("/readyz")
        detailed = client.get("/readyz", headers=MONITOR)
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "not ready"}
    assert detailed.status_code == 503
    checks = detailed.json()["checks"]
    assert checks["database"] == "ok" and "cannot reach the Prefect API" in checks["prefect"]


def test_readyz_is_not_ready_when_prefect_hangs(api_app_settings: Settings) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = api_app_settings.model_copy(
            update={
                "prefect_api_url": f"http://127.0.0.1:{silent.getsockname()[1]}/api",
                "connect_timeout_s": 0.5,
                "orchestrator_deadline_s": 3.0,
                "monitoring_token": SecretStr(MONITORING_TOKEN),
            }
        )
        with make_client(hung) as client:
            response = client.get("/readyz", headers=MONITOR)
    assert response.status_code == 503
    assert response.json()["checks"]["prefect"] == "timed out after 0.5 s"
    assert response.json()["checks"]["database"] == "ok"


def test_metrics_need_the_monitoring_token_or_an_admin(monitored: TestClient, api_app_settings: Settings) -> None:
    admin, analyst = new_account(monitored, api_app_settings, Role.admin), new_account(monitored, api_app_settings)
    assert monitored.get("/metrics").status_code == 401
    assert monitored.get("/metrics", headers=analyst.headers).status_code == 403
    assert monitored.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    assert monitored.get("/metrics", headers=MONITOR).status_code == 200
    assert monitored.get("/metrics", headers=admin.headers).status_code == 200


def test_without_a_monitoring_token_only_admins_read_metrics(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/metrics", headers=admin.headers).status_code == 200


def test_metrics_count_requests_by_route_and_status(monitored: TestClient) -> None:
    monitored.get("/healthz")
    monitored.get("/analyses")  # 401
    text = monitored.get("/metrics", headers=MONITOR).text
    assert 'cropai_api_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'cropai_api_requests_total{method="GET",route="/analyses",status="401"}' in text
    assert "cropai_api_request_duration_seconds_bucket" in text


def test_every_response_carries_a_request_id_and_keeps_a_given_one(client: TestClient) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert client.get("/healthz", headers={"X-Request-ID": "trace-abc"}).headers["x-request-id"] == "trace-abc"


def test_access_log_is_one_json_line_per_request(client: TestClient, caplog) -> None:
    import json

    from api.observability import JsonFormatter

    with caplog.at_level("INFO", logger="cropai.api.access"):
        client.get("/healthz", headers={"X-Request-ID": "log-me"})
    [record] = [r for r in caplog.records if r.name == "cropai.api.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "log-me" and line["route"] == "/healthz" and line["status"] == 200
    assert line["duration_ms"] >= 0


def test_cors_allows_configured_origins_only(api_app_settings: Settings) -> None:
    allowed = api_app_settings.model_copy(update={"cors_origins": "https://maps.example.org"})
    with make_client(allowed) as client:
        preflight = {"Origin": "https://maps.example.org", "Access-Control-Request-Method": "POST"}
        assert (
            client.options("/analyses", headers=preflight).headers["access-control-allow-origin"]
            == "https://maps.example.org"
        )
        other = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers


def test_admin_panel_lets_admins_in_and_keeps_analysts_out(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    analyst = new_account(client, api_app_settings)
    assert client.get("/admin/user/list", follow_redirects=False).status_code in (302, 303, 307)
    refused = client.post(
        "/admin/login", data={"username": analyst.email, "password": PASSWORD}, follow_redirects=False
    )
    assert refused.status_code == 400
    client.post("/admin/login", data={"username": admin.email, "password": PASSWORD})
    users = client.get("/admin/user/list")
    assert users.status_code == 200 and analyst.email in users.text
    assert "$argon2" not in client.get(f"/admin/user/details/{analyst.id}").text


def test_docs_and_redoc_are_served(client: TestClient) -> None:
    assert "swagger-ui" in client.get("/docs").text.lower()
    assert "redoc" in client.get("/redoc").text.lower()


def test_the_api_never_loads_torch_dask_or_xarray() -> None:
    code = (
        "import sys; from api.main import create_app; from cropai.config import Settings; "
        "import tempfile; create_app(Settings(_env_file=None, home=tempfile.mkdtemp())); "
        "print(sorted(m for m in ('torch', 'dask', 'distributed', 'xarray', 'rasterio') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
