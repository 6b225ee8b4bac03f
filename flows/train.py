"""The ``train`` flow: fit a crop-type model on labelled parcels (or label rasters) and register it."""

from __future__ import annotations

import uuid

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from cropai import training_runs
from cropai.errors import CropAIError
from cropai.services import services
from cropai.training_season import ParcelTraining
from models.evaluation import ConfusionMatrix
from models.train import TrainOutcome
from tasks.train import (
    synthesise_training_set,
    synthetic_training_description,
    train_and_register,
    train_on_parcels,
)


@flow(name="train", log_prints=False)
def train(
    scenes_dir: str | None = None,
    labels_path: str | None = None,
    parcels_path: str | None = None,
    name: str = "cropnet",
    version: str | None = None,
    seed: int = 0,
    epochs: int = 40,
    steps_per_epoch: int = 40,
    register_version: bool = True,
    parcels: ParcelTraining | None = None,
    family: str = "cropnet",
    training_run_id: str | None = None,
) -> TrainOutcome:
    """Train a crop-type model and register it as `name@version`.

    Args:
        scenes_dir: folder of scenes (GeoTIFFs with described bands); empty for the default
            synthetic training set, generated from `seed`.
        labels_path: label raster on the scenes' grid (class ids, 0 = unlabelled).
        parcels_path: field parcels (GeoJSON) for the train/validation split; without them
            connected patches of one class count as fields.
        name: model name.
        version: version to register; empty for the next one (1.0.0 for a new name).
        seed: random seed of the data split, the initial weights and the batches.
        epochs: passes of `steps_per_epoch` batches each.
        steps_per_epoch: batches per epoch.
        register_version: register the result in the model registry.
        parcels: labelled parcels, their legend and season: train on the catalogue's scenes
            that cover them (the main road; `scenes_dir` and `labels_path` are then unused).
        family: `cropnet` (trained from scratch) or `presto` (pretrained encoder, linear head).
        training_run_id: the training run (POST /models) this flow run carries out, with
            `parcels`: it is marked running, then completed with the version or failed with
            the reason.
    """
    config = {"seed": seed, "epochs": epochs, "steps_per_epoch": steps_per_epoch, "family": family}
    if parcels is not None:
        if training_run_id is None:
            outcome = train_on_parcels(parcels, name, version, config, register_version)
        else:
            outcome = carry_out_training_run(
                uuid.UUID(training_run_id), parcels, name, version, config, register_version
            )
        report(name, outcome)
        return outcome
    if training_run_id is not None:
        raise ValueError("training_run_id needs parcels: a training run trains on labelled parcels")
    description = None
    if scenes_dir is None:
        folder = synthesise_training_set(seed)
        description = synthetic_training_description(seed)
        scenes_dir, labels_path, parcels_path = f"{folder}/scenes", f"{folder}/labels.tif", f"{folder}/parcels.geojson"
    elif labels_path is None:
        raise ValueError("labels_path is required with scenes_dir")
    outcome = train_and_register(
        scenes_dir, labels_path, parcels_path, name, version, config, register_version, description
    )
    report(name, outcome)
    return outcome


def carry_out_training_run(
    run_id: uuid.UUID,
    parcels: ParcelTraining,
    name: str,
    version: str | None,
    config: dict[str, object],
    register_version: bool,
) -> TrainOutcome:
    """Train on the parcels as the training run ``run_id``: running, then completed with the
    registered version and its scores, or failed with the reason (a refused request registers
    nothing: every check comes before the registry)."""
    sessions = services().sessions
    if not training_runs.start(sessions, run_id, uuid.UUID(flow_run.id) if flow_run.id else None):
        raise RuntimeError(f"training run {run_id} is not queued (it failed or finished before this flow run began)")
    try:
        outcome = train_on_parcels(parcels, name, version, config, register_version)
    except Exception as exc:
        training_runs.fail(
            sessions, run_id, str(exc) if isinstance(exc, CropAIError) else f"{type(exc).__name__}: {exc}"
        )
        raise
    model_ref = f"{name}@{outcome.version}" if outcome.registered else None
    training_runs.complete(sessions, run_id, model_ref, outcome.metrics)
    return outcome


def report(name: str, outcome: TrainOutcome) -> None:
    """The run's artifacts: per-class scores beside the baseline's, and the confusion matrix."""
    metrics = outcome.metrics
    baseline = metrics["baseline"]["per_class"]
    create_table_artifact(
        [
            {
                "class": cls,
                "fields": metrics["fields_per_class"].get(cls, 0),
                **values,
                "baseline_f1": baseline[cls]["f1"] if cls in baseline else None,
            }
            for cls, values in metrics["per_class"].items()
        ],
        key="train-per-class",
        description=f"{name}@{outcome.version}: overall accuracy {metrics['overall_accuracy']:.3f}, "
        f"macro F1 {metrics['macro_f1']:.3f} on {metrics['validation_fields']} held-out fields; baseline "
        f"(logistic regression on the composites) {metrics['baseline']['overall_accuracy']:.3f} / "
        f"{metrics['baseline']['macro_f1']:.3f}",
    )
    create_markdown_artifact(confusion_markdown(metrics["confusion_matrix"]), key="train-confusion-matrix")


def confusion_markdown(matrix: ConfusionMatrix) -> str:
    """The confusion matrix as a Markdown table, without the classes absent from both sides."""
    classes = matrix["classes"]
    rows = matrix["rows_truth_columns_predicted"]
    kept = [i for i, row in enumerate(rows) if sum(row) or any(r[i] for r in rows)]
    header = "| truth \\ predicted | " + " | ".join(classes[i] for i in kept) + " |"
    lines = [header, "|" + " --- |" * (len(kept) + 1)]
    lines += [f"| {classes[i]} | " + " | ".join(str(rows[i][j]) for j in kept) + " |" for i in kept]
    return "# Confusion matrix (held-out fields, pixels)\n\n" + "\n".join(lines)
