"""POST /ingest refuses, before any run starts, a source outside CROPAI_INGEST_ROOTS, the
store's inbox or public http(s) hosts, and says which setting to change."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

from cropai.config import Settings
from cropai.db import Role
from tests.api_fixtures import UNSERVED_INGEST, Account, make_client, new_account


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "s2").mkdir(parents=True)
    return tmp_path / "root"


@pytest.fixture
def rooted(api_app_settings: Settings, root: Path) -> Iterator[tuple[TestClient, Account]]:
    """The API with one ingest root, and an admin of it."""
    with make_client(api_app_settings.model_copy(update={"ingest_roots": str(root)})) as client:
        yield client, new_account(client, api_app_settings, Role.admin)


def ingest_runs_started() -> int:
    with get_client(sync_client=True) as prefect:
        deployment = DeploymentFilter(name=DeploymentFilterName(any_=[UNSERVED_INGEST.split("/")[1]]))
        return len(prefect.read_flow_runs(deployment_filter=deployment))


def test_a_server_file_outside_the_roots_is_refused_before_a_run_starts(
    rooted: tuple[TestClient, Account], root: Path
) -> None:
    client, admin = rooted
    before = ingest_runs_started()
    response = client.post("/ingest", json={"source": "/proc/self/environ"}, headers=admin.headers)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "source"]
    assert "CROPAI_INGEST_ROOTS" in error["msg"] and str(root.resolve()) in error["msg"]
    assert ingest_runs_started() == before


def test_a_folder_inside_the_roots_starts_a_run(rooted: tuple[TestClient, Account], root: Path) -> None:
    client, admin = rooted
    started = client.post("/ingest", json={"source": f"{root}/s2/"}, headers=admin.headers)
    assert started.status_code == 202
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(uuid.UUID(started.json()["flow_run_id"]))
    assert run.parameters["source"] == f"{root}/s2/"


@pytest.mark.parametrize(
    "source",
    [
        "http://127.0.0.1:8000/catalog.json",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/?x=.json",
        "http://10.0.0.1/catalog.json",
    ],
)
def test_stac_urls_on_internal_addresses_are_refused(rooted: tuple[TestClient, Account], source: str) -> None:
    client, admin = rooted
    response = client.post("/ingest", json={"source": source}, headers=admin.headers)
    assert response.status_code == 422 and "address" in response.json()["detail"][0]["msg"]


def test_store_prefixes_other_than_the_inbox_are_refused(rooted: tuple[TestClient, Account]) -> None:
    client, admin = rooted
    response = client.post("/ingest", json={"source": "store:scenes/"}, headers=admin.headers)
    assert response.status_code == 422 and "only the store's inbox" in response.json()["detail"][0]["msg"]
