"""Submitting, isolating, cancelling and reconciling analyses through the API, with
flow runs created on Prefect's harness (for a deployment nobody serves)."""

import uuid

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client
from prefect.states import Crashed
from sqlalchemy import func, select

from cropai.config import Settings
from cropai.db import Analysis, AnalysisStatus, Role
from cropai.services import services
from tests.api_fixtures import SQUARE, UNSERVED_DEPLOYMENT, make_client, new_account

REQUEST = {
    "name": "beauce",
    "aoi": SQUARE,
    "start_date": "2025-04-01",
    "end_date": "2025-09-30",
    "model": "cropnet@latest",
}


def submit(client: TestClient, headers: dict[str, str], **changes: object) -> dict:
    response = client.post("/analyses", json={**REQUEST, **changes}, headers=headers)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/analyses/{response.json()['id']}"
    return response.json()


def flow_run(flow_run_id: str):
    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_run(uuid.UUID(flow_run_id))


def test_submission_queues_the_analysis_and_starts_its_deployment(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    made = submit(client, analyst.headers)
    assert made["status"] == "queued" and made["owner_id"] == analyst.id
    assert made["aoi_area_ha"] == pytest.approx(660, rel=0.01)  # 0.04° x 0.02° at 48.2° N: 2.97 km x 2.22 km
    run = flow_run(made["flow_run_id"])
    assert run.parameters == {"analysis_id": made["id"], "attempt": 1}
    assert run.state.is_scheduled() and "api" in run.tags
    with get_client(sync_client=True) as prefect:
        assert prefect.read_deployment(run.deployment_id).name == UNSERVED_DEPLOYMENT.split("/")[1]


def test_retry_with_the_same_idempotency_key_returns_the_same_analysis(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    headers = {**analyst.headers, "Idempotency-Key": "order-42"}
    first, second = submit(client, headers), submit(client, headers)
    assert first["id"] == second["id"] and first["flow_run_id"] == second["flow_run_id"]
    other = submit(client, {**analyst.headers, "Idempotency-Key": "order-43"})
    assert other["id"] != first["id"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"aoi": {"type": "Point", "coordinates": [1.6, 48.2]}}, "aoi", "expected a Polygon"),
        ({"aoi": {"type": "Polygon", "coordinates": "nonsense"}}, "aoi", "not valid GeoJSON"),
        ({"aoi": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}, "aoi", "invalid"),
        (
            {
                "aoi": {
                    "type": "Polygon",
                    "coordinates": [[[400000, 5300000], [410000, 5300000], [410000, 5310000], [400000, 5300000]]],
                }
            },
            "aoi",
            "EPSG:4326",
        ),
        ({"aoi": {"type": "Polygon", "coordinates": [[[0, 40], [2, 40], [2, 42], [0, 42], [0, 40]]]}}, "aoi", "km²"),
        ({"start_date": "2025-09-30", "end_date": "2025-04-01"}, "end_date", "before it starts"),
        ({"start_date": "2024-01-01", "end_date": "2025-09-30"}, "end_date", "at most 400"),
        ({"model": "cropnet@9.9.9"}, "model", "known versions: cropnet@1.0.0"),
        ({"model": "Not A Model"}, "model", "expected name@version"),
        ({"start_date": "yesterday"}, "start_date", "date"),
    ],
)
def test_invalid_requests_get_a_422_naming_the_field(
    client: TestClient, api_app_settings: Settings, changes: dict, field: str, words: str
) -> None:
    analyst = new_account(client, api_app_settings)
    response = client.post("/analyses", json={**REQUEST, **changes}, headers=analyst.headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field] and words.lower() in error["msg"].lower()


def test_aoi_vertex_limit_names_the_aoi(api_app_settings: Settings) -> None:
    with make_client(api_app_settings.model_copy(update={"max_aoi_vertices": 4})) as client:
        analyst = new_account(client, api_app_settings)
        response = client.post("/analyses", json=REQUEST, headers=analyst.headers)
        assert response.status_code == 422 and "5 vertices" in response.json()["detail"][0]["msg"]


def test_rejected_requests_leave_no_rows(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    client.post("/analyses", json={**REQUEST, "model": "cropnet@9.9.9"}, headers=analyst.headers)
    with services(api_app_settings).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Analysis)) == 0


def test_prefect_unreachable_is_a_503_and_nothing_is_left_half_written(api_app_settings: Settings) -> None:
    from tests.conftest import free_port

    gone = api_app_settings.model_copy(update={"prefect_api_url": f"http://127.0.0.1:{free_port()}/api"})
    with make_client(gone) as client:
        analyst = new_account(client, gone)
        response = client.post("/analyses", json=REQUEST, headers=analyst.headers)
        assert response.status_code == 503 and "cannot reach the Prefect API" in response.json()["detail"]
    with services(gone).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Analysis)) == 0


def test_analysts_see_only_their_own_analyses(client: TestClient, api_app_settings: Settings) -> None:
    alice, bob = new_account(client, api_app_settings), new_account(client, api_app_settings)
    mine = submit(client, alice.headers)
    for path in ("", "/map", "/quicklook.png", "/fields"):
        response = client.get(f"/analyses/{mine['id']}{path}", headers=bob.headers)
        assert response.status_code == 404, path
    assert client.delete(f"/analyses/{mine['id']}", headers=bob.headers).status_code == 404
    assert client.get("/analyses", headers=bob.headers).json()["total"] == 0
    assert [a["id"] for a in client.get("/analyses", headers=alice.headers).json()["items"]] == [mine["id"]]


def test_viewers_read_everything_but_cannot_submit(client: TestClient, api_app_settings: Settings) -> None:
    analyst, viewer = new_account(client, api_app_settings), new_account(client, api_app_settings, Role.viewer)
    made = submit(client, analyst.headers)
    assert client.get(f"/analyses/{made['id']}", headers=viewer.headers).status_code == 200
    refused = client.post("/analyses", json=REQUEST, headers=viewer.headers)
    assert refused.status_code == 403 and "analyst" in refused.json()["detail"]
    assert client.delete(f"/analyses/{made['id']}", headers=viewer.headers).status_code == 403


def test_list_filters_by_status_and_pages(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    ids = [submit(client, analyst.headers, name=f"a{i}")["id"] for i in range(3)]
    client.delete(f"/analyses/{ids[0]}", headers=analyst.headers)
    page = client.get("/analyses?limit=1&offset=1&status=queued", headers=analyst.headers).json()
    assert page["total"] == 2 and page["limit"] == 1 and len(page["items"]) == 1
    assert client.get("/analyses?status=cancelled", headers=analyst.headers).json()["items"][0]["id"] == ids[0]


def test_results_of_an_unfinished_analysis_are_a_409(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    made = submit(client, analyst.headers)
    response = client.get(f"/analyses/{made['id']}/map", headers=analyst.headers)
    assert response.status_code == 409 and "queued" in response.json()["detail"]


def test_cancel_stops_the_flow_run_and_says_who(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    made = submit(client, analyst.headers)
    cancelled = client.delete(f"/analyses/{made['id']}", headers=analyst.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and analyst.email in cancelled.json()["status_reason"]
    assert flow_run(made["flow_run_id"]).state.is_cancelled()
    assert client.delete(f"/analyses/{made['id']}", headers=analyst.headers).status_code == 409


def test_a_crashed_flow_run_turns_a_stale_row_into_failed_with_the_reason(
    client: TestClient, api_app_settings: Settings
) -> None:
    analyst = new_account(client, api_app_settings)
    made = submit(client, analyst.headers)
    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(
            uuid.UUID(made["flow_run_id"]), Crashed(message="worker lost: out of memory"), force=True
        )
    read = client.get(f"/analyses/{made['id']}", headers=analyst.headers).json()
    assert read["status"] == "failed"
    assert "Crashed" in read["status_reason"] and "out of memory" in read["status_reason"]
    with services(api_app_settings).sessions() as session:
        assert session.get_one(Analysis, uuid.UUID(made["id"])).status == AnalysisStatus.failed


def test_submissions_are_rate_limited_per_user(api_app_settings: Settings) -> None:
    limited = api_app_settings.model_copy(update={"submissions_per_minute": 2})
    with make_client(limited) as client:
        alice, bob = new_account(client, limited), new_account(client, limited)
        codes = [client.post("/analyses", json=REQUEST, headers=alice.headers).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        assert client.post("/analyses", json=REQUEST, headers=bob.headers).status_code == 202


def test_a_just_completed_flow_run_leaves_the_row_to_its_hook(
    client: TestClient, api_app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.states import Completed

    analyst = new_account(client, api_app_settings)
    made = submit(client, analyst.headers)
    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(uuid.UUID(made["flow_run_id"]), Completed(), force=True)
    assert client.get(f"/analyses/{made['id']}", headers=analyst.headers).json()["status"] == "queued"
    monkeypatch.setattr("api.reconcile.COMPLETION_GRACE_S", 0.0)  # the hook never came
    read = client.get(f"/analyses/{made['id']}", headers=analyst.headers).json()
    assert read["status"] == "failed" and "without recording the results" in read["status_reason"]
