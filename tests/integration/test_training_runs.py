"""A training run (POST /models) carried out by the train flow under Prefect's test harness, on
an owner's fields in the catalogue over ingested generated scenes: it ends completed with the
version it registered, or failed with the reason and nothing registered."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cropai import training_runs
from cropai.accounts import create_user
from cropai.config import Settings
from cropai.crops import SYNTHETIC_LEGEND
from cropai.db import Role, TrainingRun, TrainingStatus
from cropai.fields import add_fields
from cropai.ingest import ingest_candidate
from cropai.services import Services, services
from cropai.sources import discover
from cropai.synth import SynthSpec, synthesize
from cropai.training_season import ParcelTraining
from flows.train import train
from models.registry import list_versions, resolve
from tests.model_fixtures import SEASON_BBOX

START, END = date(2025, 4, 1), date(2025, 9, 30)
# The synthetic world's legend as a request gives it: code (the class name), class, colour.
LEGEND_ROWS = [{"code": c.codes[0], "class": c.name, "colour": c.colour} for c in SYNTHETIC_LEGEND.classes]


@pytest.fixture
def owner_with_fields(flow_settings: Settings, tmp_path: Path) -> int:
    """An analyst whose fields (the generated parcels, labelled by ``class_name``) lie under
    a season of ingested scenes."""
    svc = services(flow_settings)
    made = synthesize(SynthSpec(SEASON_BBOX, START, END, seed=5, revisit_days=10), tmp_path / "synthetic")
    for candidate in discover(str(made.root / "scenes"), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)
    owner = create_user(
        svc.sessions, f"trainer-{uuid.uuid4().hex[:8]}@example.org", "a-long-test-password", Role.analyst
    )
    add_fields(svc.sessions, json.loads(made.parcels_path.read_text()), owner.id)
    return owner.id


def run_training(svc: Services, owner_id: int, legend_rows: list[dict[str, Any]]) -> tuple[Any, TrainingRun]:
    """Queue a training run as the API does, carry it out with the flow; its final state and row."""
    request = ParcelTraining(
        owner_id=owner_id,
        label_column="class_name",
        legend_records=legend_rows,
        start=START,
        end=END,
        merge_rare=True,  # the box's single-field classes become "other"
    )
    run_id = training_runs.create(svc.sessions, owner_id, "fieldnet", request, "cropnet")
    state = train(
        name="fieldnet",
        seed=1,
        epochs=2,
        steps_per_epoch=2,
        parcels=request,
        training_run_id=str(run_id),
        return_state=True,
    )
    with svc.sessions() as session:
        return state, session.get_one(TrainingRun, run_id)


def test_a_training_run_ends_completed_with_the_version_it_registered(
    flow_settings: Settings, owner_with_fields: int
) -> None:
    svc = services(flow_settings)
    state, run = run_training(svc, owner_with_fields, LEGEND_ROWS)
    assert state.is_completed()
    assert (run.status, run.model_ref, run.status_reason) == (TrainingStatus.completed, "fieldnet@1.0.0", None)
    assert run.flow_run_id == state.state_details.flow_run_id
    registered = resolve(svc.sessions, "fieldnet@1.0.0")
    assert run.metrics is not None and run.metrics["macro_f1"] == registered.metrics["macro_f1"]
    assert run.metrics["baseline"]["macro_f1"] == registered.metrics["baseline"]["macro_f1"]
    assert run.started_at is not None and run.finished_at is not None


def test_a_refused_training_run_ends_failed_with_its_reason_and_registers_nothing(
    flow_settings: Settings, owner_with_fields: int
) -> None:
    svc = services(flow_settings)
    without_maize = [row for row in LEGEND_ROWS if row["class"] != "maize"]
    state, run = run_training(svc, owner_with_fields, without_maize)
    assert state.is_failed()
    assert run.status == TrainingStatus.failed and run.model_ref is None
    assert run.status_reason is not None and "not in the legend: 'maize'" in run.status_reason
    assert list_versions(svc.sessions, "fieldnet") == []
