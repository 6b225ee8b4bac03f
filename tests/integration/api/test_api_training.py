"""Training on demand: POST /models checks a request on the caller's fields before it starts a
flow run of the train deployment (registered, never served), and a refusal names what is wrong
and leaves nothing behind."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from sqlalchemy import func, select

from cropai.config import Settings
from cropai.db import Role, TrainingRun
from cropai.ingest import ingest_candidate
from cropai.services import services
from cropai.sources import discover
from cropai.synth import SyntheticSet, SynthSpec, synthesize
from tests.api_fixtures import UNSERVED_TRAIN, Account, new_account
from tests.model_fixtures import SEASON_BBOX


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    """A season of generated scenes (one a month) over a small box, and its parcels."""
    spec = SynthSpec(SEASON_BBOX, date(2025, 4, 1), date(2025, 9, 30), seed=5, revisit_days=30)
    return synthesize(spec, tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def scenes(api_app_settings: Settings, synthetic: SyntheticSet) -> None:
    svc = services(api_app_settings)
    for candidate in discover(str(synthetic.root / "scenes"), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)


def parcels(synthetic: SyntheticSet) -> list[dict[str, Any]]:
    """The generated parcels as a user's declarations: a numeric crop code per field."""
    features = json.loads(synthetic.parcels_path.read_text())["features"]
    for feature in features:
        feature["properties"]["crop_code"] = 1000 + feature["properties"]["class_id"]
    return features


def legend(synthetic: SyntheticSet) -> list[dict[str, Any]]:
    """A row per crop code of the parcels, named after its class."""
    classes = {f["properties"]["crop_code"]: f["properties"]["class_name"] for f in parcels(synthetic)}
    return [{"code": code, "class": name} for code, name in sorted(classes.items())]


def request(synthetic: SyntheticSet, **changes: object) -> dict[str, Any]:
    return {
        "name": "beauce",
        "label_property": "crop_code",
        "legend": legend(synthetic),
        "start": "2025-04-01",
        "end": "2025-09-30",
        "min_fields": 1,
        "epochs": 3,
        "seed": 7,
        **changes,
    }


def analyst_with_fields(client: TestClient, settings: Settings, synthetic: SyntheticSet) -> Account:
    analyst = new_account(client, settings)
    uploaded = client.post(
        "/fields", json={"type": "FeatureCollection", "features": parcels(synthetic)}, headers=analyst.headers
    )
    assert uploaded.status_code == 201, uploaded.text
    return analyst


def train(client: TestClient, account: Account, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/models", json=body, headers=account.headers)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/models/training/{response.json()['id']}"
    return response.json()


def training_flow_runs() -> int:
    with get_client(sync_client=True) as prefect:
        deployment = DeploymentFilter(name=DeploymentFilterName(any_=[UNSERVED_TRAIN.split("/")[1]]))
        return len(prefect.read_flow_runs(deployment_filter=deployment))


def training_rows(settings: Settings) -> int:
    with services(settings).sessions() as session:
        return session.scalar(select(func.count()).select_from(TrainingRun)) or 0


@pytest.mark.usefixtures("scenes")
def test_a_training_request_queues_a_run_and_starts_the_train_deployment(
    client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet
) -> None:
    analyst = analyst_with_fields(client, api_app_settings, synthetic)
    made = train(client, analyst, request(synthetic))
    assert made["status"] == "queued" and made["owner_id"] == analyst.id and made["flow_run_id"]
    with services(api_app_settings).sessions() as session:
        row = session.get_one(TrainingRun, uuid.UUID(made["id"]))
    assert str(row.flow_run_id) == made["flow_run_id"] and row.name == "beauce"
    with get_client(sync_client=True) as prefect:
        run = prefect.read_flow_run(uuid.UUID(made["flow_run_id"]))
    assert run.state is not None and run.state.is_scheduled()
    parameters = run.parameters
    assert {k: parameters[k] for k in ("name", "seed", "epochs", "register_version", "family")} == {
        "name": "beauce",
        "seed": 7,
        "epochs": 3,
        "register_version": True,
        "family": "cropnet",
    }
    assert parameters["training_run_id"] == made["id"]
    assert parameters["parcels"] == row.request
    assert (row.request["owner_id"], row.request["label_column"], row.request["start"]) == (
        analyst.id,
        "crop_code",
        "2025-04-01",
    )


@pytest.mark.usefixtures("scenes")
def test_a_viewer_may_not_train(client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet) -> None:
    viewer = new_account(client, api_app_settings, Role.viewer)
    response = client.post("/models", json=request(synthetic), headers=viewer.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"label_property": "crop"}, "no field has a value in the property 'crop'"),
        ({"legend": [{"code": 1003, "class": "maize"}]}, "not in the legend: '10"),
        ({"start": "2025-04-05", "bin_length": "10d"}, "season start 2025-04-05: 10d bins start on day 1 or 11 or 21"),
        ({"end": "2025-10-31"}, "no scene of the parcels in 1 time bin(s) of the season (2025-10-01 to 2025-10-31)"),
    ],
    ids=["missing label property", "legend missing a code", "bad season", "a bin without a scene"],
)
@pytest.mark.usefixtures("scenes")
def test_a_refused_request_is_a_422_naming_it_and_starts_nothing(
    client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet, changes: dict[str, Any], words: str
) -> None:
    analyst = analyst_with_fields(client, api_app_settings, synthetic)
    before = training_flow_runs()
    response = client.post("/models", json=request(synthetic, **changes), headers=analyst.headers)
    assert response.status_code == 422 and words in response.json()["detail"], response.text
    assert training_rows(api_app_settings) == 0 and training_flow_runs() == before


def test_fields_where_no_scene_was_ingested_are_a_422_naming_their_box(
    client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet
) -> None:
    analyst = analyst_with_fields(client, api_app_settings, synthetic)
    before = training_flow_runs()
    response = client.post("/models", json=request(synthetic), headers=analyst.headers)
    assert response.status_code == 422
    named = re.search(
        r"no usable scenes for the AOI \(bbox \(([-\d., ]+)\)\) between 2025-04-01 and 2025-09-30",
        response.json()["detail"],
    )
    assert named and [float(v) for v in named[1].split(",")] == pytest.approx(SEASON_BBOX, abs=0.001)
    assert training_rows(api_app_settings) == 0 and training_flow_runs() == before


@pytest.mark.usefixtures("scenes")
def test_another_analysts_training_run_is_not_there(
    client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet
) -> None:
    owner = analyst_with_fields(client, api_app_settings, synthetic)
    made = train(client, owner, request(synthetic))
    other = new_account(client, api_app_settings)
    assert client.get(f"/models/training/{made['id']}", headers=other.headers).status_code == 404
    assert client.get("/models/training", headers=other.headers).json()["total"] == 0
    mine = client.get(f"/models/training/{made['id']}", headers=owner.headers)
    assert mine.status_code == 200 and mine.json()["flow_run_id"] == made["flow_run_id"]
    assert [run["id"] for run in client.get("/models/training", headers=owner.headers).json()["items"]] == [made["id"]]


def test_unknown_field_ids_are_named(client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet) -> None:
    analyst = analyst_with_fields(client, api_app_settings, synthetic)
    response = client.post("/models", json=request(synthetic, field_ids=[2_000_000]), headers=analyst.headers)
    assert response.status_code == 422 and "fields 2000000 are not among your fields" in response.json()["detail"]


def test_a_season_of_pure_nonsense_is_refused_by_the_schema(
    client: TestClient, api_app_settings: Settings, synthetic: SyntheticSet
) -> None:
    analyst = new_account(client, api_app_settings)
    response = client.post("/models", json=request(synthetic, start="9999-12-01"), headers=analyst.headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "start"]
