"""The train flow under Prefect's test harness: train on generated data, register, report."""

from datetime import date
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from cropai.config import Settings
from cropai.season import Season
from cropai.services import services
from cropai.synth import SynthSpec, synthesize
from flows.train import train
from models.registry import load, resolve
from tests.model_fixtures import SEASON_BBOX


def test_train_flow_registers_a_version_with_its_metrics_and_artifacts(flow_settings: Settings, tmp_path: Path) -> None:
    made = synthesize(SynthSpec(SEASON_BBOX, date(2025, 4, 1), date(2025, 9, 30), seed=4, revisit_days=10), tmp_path)
    state = train(
        str(made.root / "scenes"),
        str(made.labels_path),
        str(made.parcels_path),
        name="fieldnet",
        seed=2,
        epochs=3,
        steps_per_epoch=3,
        return_state=True,
    )
    assert state.is_completed()
    outcome = state.result()
    assert (outcome.name, outcome.version) == ("fieldnet", "1.0.0")
    svc = services(flow_settings)
    row = resolve(svc.sessions, "fieldnet@latest")
    assert row.metrics["macro_f1"] == outcome.metrics["macro_f1"]
    assert row.training["config"]["seed"] == 2 and len(row.training["losses"]) == 3
    assert load(svc.store, svc.sessions, "fieldnet@1.0.0").contract.season == Season(start_month=4, bins=6)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    keys = {a.key for a in artifacts}
    assert {"train-per-class", "train-confusion-matrix"} <= keys
    matrix = next(a for a in artifacts if a.key == "train-confusion-matrix").data
    assert isinstance(matrix, str) and "truth \\ predicted" in matrix

    again = train(
        str(made.root / "scenes"),
        str(made.labels_path),
        str(made.parcels_path),
        name="fieldnet",
        seed=2,
        epochs=1,
        steps_per_epoch=1,
    )
    assert again.version == "1.0.1"
