"""The ``train`` flow: fit a crop-type model on labelled rasters and register it."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from models.train import ConfusionMatrix, TrainOutcome
from tasks.train import synthesise_training_set, synthetic_training_description, train_and_register


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
    """
    description = None
    if scenes_dir is None:
        folder = synthesise_training_set(seed)
        description = synthetic_training_description(seed)
        scenes_dir, labels_path, parcels_path = f"{folder}/scenes", f"{folder}/labels.tif", f"{folder}/parcels.geojson"
    elif labels_path is None:
        raise ValueError("labels_path is required with scenes_dir")
    config = {"seed": seed, "epochs": epochs, "steps_per_epoch": steps_per_epoch}
    outcome = train_and_register(
        scenes_dir, labels_path, parcels_path, name, version, config, register_version, description
    )
    metrics = outcome.metrics
    create_table_artifact(
        [{"class": cls, **values} for cls, values in metrics["per_class"].items()],
        key="train-per-class",
        description=f"{name}@{outcome.version}: overall accuracy {metrics['overall_accuracy']:.3f}, "
        f"macro F1 {metrics['macro_f1']:.3f} on {metrics['validation_fields']} held-out fields",
    )
    create_markdown_artifact(confusion_markdown(metrics["confusion_matrix"]), key="train-confusion-matrix")
    return outcome


def confusion_markdown(matrix: ConfusionMatrix) -> str:
    """The confusion matrix as a Markdown table, without the classes absent from both sides."""
    classes = matrix["classes"]
    rows = matrix["rows_truth_columns_predicted"]
    kept = [i for i, row in enumerate(rows) if sum(row) or any(r[i] for r in rows)]
    header = "| truth \\ predicted | " + " | ".join(classes[i] for i in kept) + " |"
    lines = [header, "|" + " --- |" * (len(kept) + 1)]
    lines += [f"| {classes[i]} | " + " | ".join(str(rows[i][j]) for j in kept) + " |" for i in kept]
    return "# Confusion matrix (held-out fields, pixels)\n\n" + "\n".join(lines)
