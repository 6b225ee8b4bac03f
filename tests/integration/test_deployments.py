"""prefect.yaml: every deployment's flow loads, its parameters and schedule are
valid, and `prefect deploy` registers it on a real Prefect server."""

import contextlib
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cronsim import CronSim
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectAlreadyExists
from prefect.flows import Flow, load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parents[2]
# Parameters an on-demand deployment is given per run (the API passes the analysis id).
PER_RUN = {"analyze": {"analysis_id": "7a4ff64e-5c1d-4d44-8a4a-9a2b0c7d1e01"}}


def deployments() -> list[dict[str, Any]]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["name"])
def test_each_deployment_loads_its_flow_with_valid_parameters(deployment: dict[str, Any]) -> None:
    flow: Flow[..., Any] = load_flow_from_entrypoint(deployment["entrypoint"])
    flow.validate_parameters({**deployment.get("parameters", {}), **PER_RUN.get(deployment["name"], {})})
    assert deployment["work_pool"]["name"] == "cropai"
    for schedule in deployment.get("schedules", []):
        CronSim(schedule["cron"], datetime(2025, 1, 1))  # raises if malformed


def test_names_match_what_the_api_and_cropai_serve_use() -> None:
    from cropai.config import Settings
    from flows.serve import INGEST_CRON

    settings = Settings(_env_file=None)
    names = {f"{load_flow_from_entrypoint(d['entrypoint']).name}/{d['name']}" for d in deployments()}
    assert {settings.analyze_deployment, settings.ingest_deployment} <= names
    [ingest] = [d for d in deployments() if d["name"] == "ingest-scheduled"]
    assert ingest["schedules"][0]["cron"] == INGEST_CRON


def test_ingestion_is_scheduled() -> None:
    [ingest] = [d for d in deployments() if d["name"] == "ingest-scheduled"]
    assert ingest["entrypoint"] == "flows.ingest:ingest_scenes"
    assert ingest["schedules"][0]["active"] is True


def test_prefect_deploy_all_registers_every_deployment(prefect_api: str) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="cropai", type="process"))
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    with get_client(sync_client=True) as client:
        for expected_deployment in deployments():
            flow_name = load_flow_from_entrypoint(expected_deployment["entrypoint"]).name
            found = client.read_deployment_by_name(f"{flow_name}/{expected_deployment['name']}")
            assert found.entrypoint == expected_deployment["entrypoint"] and found.work_pool_name == "cropai"
            assert found.work_queue_name == expected_deployment["work_pool"]["work_queue_name"]
        deployment = client.read_deployment_by_name("ingest_scenes/ingest-scheduled")
    [expected] = [d for d in deployments() if d["name"] == "ingest-scheduled"]
    schedule = deployment.schedules[0].schedule
    assert isinstance(schedule, CronSchedule) and schedule.cron == expected["schedules"][0]["cron"]
    assert deployment.parameters == expected["parameters"]
    assert deployment.work_pool_name == "cropai"
    # The UI renders a form from this schema: the source and a STAC search sub-form.
    schema = deployment.parameter_openapi_schema
    assert schema is not None
    assert {"source", "search", "band_mapping"} <= set(schema["properties"])
    assert "StacSearch" in schema["definitions"]
