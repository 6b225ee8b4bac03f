"""Training a crop-type model from labelled rasters.

Inputs: a folder of scenes (multi-band GeoTIFFs with their bands described or
named by a band mapping, as ingestion accepts) and a label raster on the same
grid (class ids, 0 = unlabelled); optionally field parcels (GeoJSON) to split by.
The split into training and validation is by field, never by pixel: pixels of
one field are strongly correlated, and a pixel split would report the accuracy
of memorising fields rather than of recognising crops in new ones.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt
import rasterio
import torch
from affine import Affine
from rasterio.features import rasterize, shapes
from rasterio.warp import transform_geom
from torch import nn

from cropai.composite import composite, fill_gaps, monthly_bins
from cropai.errors import InvalidInput
from cropai.raster import BandSource, acquisition_time_from, plan_layout
from models.contract import DEFAULT_MONTHS, ModelContract
from models.cropnet import build

if TYPE_CHECKING:
    from cropai.synth import SynthSpec

log = logging.getLogger(__name__)
IGNORE = -100  # target value CrossEntropyLoss skips: unlabelled or held-out pixels


@dataclass
class TrainingData:
    """A season over one area: ``cube`` (time, band, y, x) reflectance without gaps,
    ``labels`` (y, x) class ids with 0 = unlabelled, ``fields`` (y, x) field ids with 0 = none."""

    cube: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    fields: npt.NDArray[np.int32]
    year: int


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 40
    steps_per_epoch: int = 40
    batch_size: int = 16
    patch_px: int = 64
    learning_rate: float = 3e-3
    validation_fraction: float = 0.2
    encoder_width: int = 64
    context_width: int = 24


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support_px: int  # pixels of the class in the truth


class ConfusionMatrix(TypedDict):
    classes: list[str]
    rows_truth_columns_predicted: list[list[int]]  # pixel counts


class Evaluation(TypedDict):
    """How a prediction agrees with the truth; ``per_class`` holds the classes present in the truth."""

    overall_accuracy: float
    macro_f1: float  # over the classes present in the truth; NaN when there are none
    per_class: dict[str, ClassScores]
    confusion_matrix: ConfusionMatrix


class HeldOutMetrics(Evaluation):
    """A trained model's evaluation on its held-out fields, and how much data each side had."""

    training_pixels: int
    validation_pixels: int
    validation_fields: int


@dataclass
class TrainResult:
    model: nn.Module
    contract: ModelContract
    metrics: HeldOutMetrics
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch


@dataclass(frozen=True)
class TrainOutcome:
    """What one training run made: the version (registered or not) and its held-out metrics."""

    name: str
    version: str
    registered: bool
    metrics: HeldOutMetrics
    losses: list[float]


# The default model's training set: a 10 km x 10 km farming area in the Beauce, one season.
DEFAULT_TRAINING_BBOX = (1.55, 48.15, 1.69, 48.24)
DEFAULT_TRAINING_SEASON = ("2025-03-01", "2025-10-31")


def default_training_spec(seed: int) -> SynthSpec:
    """The synthetic scene set the default model is trained on (``cropai train`` without data)."""
    from datetime import date

    from cropai.synth import SynthSpec

    start, end = (date.fromisoformat(d) for d in DEFAULT_TRAINING_SEASON)
    return SynthSpec(DEFAULT_TRAINING_BBOX, start, end, seed=seed)


@dataclass(frozen=True)
class _LabelGrid:
    """The label raster's grid, which every scene must share."""

    crs: Any  # a rasterio CRS
    transform: Affine
    shape: tuple[int, int]


@dataclass(frozen=True)
class _TimedScene:
    """A scene on the label grid: when it was acquired, which of its bands to read and their radiometry."""

    acquired_at: datetime
    path: Path
    sources: tuple[BandSource, ...]

    def loader(self) -> Callable[[], npt.NDArray[np.uint16]]:
        def load() -> npt.NDArray[np.uint16]:
            with rasterio.open(self.path) as src:
                stack = src.read([s.band_index for s in self.sources])
            return np.stack([s.radiometry.to_canonical(plane) for plane, s in zip(stack, self.sources, strict=True)])

        return load


def load_training_data(
    scenes_dir: Path,
    labels_path: Path,
    months: Sequence[int] = DEFAULT_MONTHS,
    parcels_path: Path | None = None,
    band_mapping: Sequence[str | None] | None = None,
) -> TrainingData:
    """Composite the scenes per month and line them up with labels and fields."""
    scene_paths = sorted(p for p in scenes_dir.glob("*.tif*") if not p.name.startswith("."))
    if not scene_paths:
        raise InvalidInput(f"no scenes (*.tif) in {scenes_dir}")
    with rasterio.open(labels_path) as src:
        labels = src.read(1)
        grid = _LabelGrid(src.crs, src.transform, src.shape)
    scenes = [_scene_on_grid(path, grid, labels_path.name, band_mapping) for path in scene_paths]
    year = Counter(scene.acquired_at.year for scene in scenes).most_common(1)[0][0]
    cube = composite([(scene.acquired_at, scene.loader()) for scene in scenes], monthly_bins(year, months))
    means = np.nanmean(cube, axis=(0, 2, 3))
    cube = fill_gaps(cube, np.nan_to_num(means).tolist())
    if parcels_path is not None:
        fields = _rasterize_parcels(parcels_path, grid)
    else:
        fields = _connected_fields(labels, grid.transform)
    return TrainingData(cube, labels.astype(np.int64), fields, year)


def _scene_on_grid(
    path: Path, grid: _LabelGrid, labels_name: str, band_mapping: Sequence[str | None] | None
) -> _TimedScene:
    """Recognise a scene's bands and acquisition time; refuse it off the label raster's grid."""
    layout = plan_layout([(str(path), None)], band_mapping)
    moment = acquisition_time_from(layout.tags, path.name)
    if moment is None:
        raise InvalidInput(f"{path.name}: no acquisition time in its tags or name")
    if layout.transform != grid.transform or (layout.height, layout.width) != grid.shape:
        raise InvalidInput(f"{path.name} is not on the label raster's grid ({labels_name})")
    return _TimedScene(moment, path, layout.sources)


def _rasterize_parcels(path: Path, grid: _LabelGrid) -> npt.NDArray[np.int32]:
    collection = json.loads(path.read_text())
    geometries = (
        (transform_geom("EPSG:4326", grid.crs, feature["geometry"]), index)
        for index, feature in enumerate(collection["features"], start=1)
    )
    fields: npt.NDArray[np.int32] = rasterize(
        geometries, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="int32"
    )
    return fields


def _connected_fields(labels: npt.NDArray[np.integer], transform: Affine) -> npt.NDArray[np.int32]:
    """Without parcels, each connected patch of one class counts as a field."""
    patches = [
        (geometry, index)
        for index, (geometry, value) in enumerate(
            shapes(labels.astype(np.int32), mask=labels > 0, transform=transform), start=1
        )
        if value
    ]
    fields: npt.NDArray[np.int32] = rasterize(
        patches, out_shape=labels.shape, transform=transform, fill=0, dtype="int32"
    )
    return fields


def split_fields(data: TrainingData, fraction: float, seed: int) -> npt.NDArray[np.bool_]:
    """A (y, x) boolean mask of validation pixels: about ``fraction`` of each class's fields."""
    rng = np.random.default_rng(seed)
    labelled = (data.fields > 0) & (data.labels > 0)
    field_ids, first = np.unique(data.fields[labelled], return_index=True)
    field_class = data.labels[labelled][first]
    held_out: list[int] = []
    for class_id in np.unique(field_class):
        ids = field_ids[field_class == class_id]
        count = round(len(ids) * fraction) if len(ids) > 1 else 0
        held_out.extend(rng.choice(ids, size=max(count, 1 if len(ids) > 1 else 0), replace=False).tolist())
    return np.isin(data.fields, held_out) & labelled


def train_model(
    data: TrainingData,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fit a CropNet on the training fields and measure it on the held-out fields."""
    torch.manual_seed(config.seed)
    validation = split_fields(data, config.validation_fraction, config.seed)
    training = (data.labels > 0) & ~validation
    if not training.any() or not validation.any():
        raise InvalidInput("need labelled pixels in at least two fields per class to train and validate")

    band_means = data.cube.mean(axis=(0, 2, 3))
    band_stds = data.cube.std(axis=(0, 2, 3)) + 1e-6
    contract = configure_contract(config, band_means.tolist(), band_stds.tolist())
    normalised = torch.from_numpy((data.cube - band_means[None, :, None, None]) / band_stds[None, :, None, None])
    class_index = _class_index(contract.class_ids)
    targets = torch.from_numpy(np.where(training, class_index[data.labels], IGNORE))

    model = build(
        contract.architecture,
        len(contract.bands),
        contract.time_bins_count,
        len(contract.class_ids),
        **contract.architecture_params,
    )
    loss_fn = configure_loss(class_index[data.labels[training]], len(contract.class_ids))
    losses = fit(model, loss_fn, normalised, targets, config, on_epoch)
    metrics = held_out_metrics(model, normalised, data, contract, training, validation)
    return TrainResult(model.eval(), contract, metrics, losses)


def configure_contract(config: TrainConfig, band_means: list[float], band_stds: list[float]) -> ModelContract:
    """The contract of a model trained with ``config`` on data of these band statistics."""
    return ModelContract(
        architecture="cropnet",
        architecture_params={"encoder_width": config.encoder_width, "context_width": config.context_width},
        band_means=band_means,
        band_stds=band_stds,
    )


def _class_index(class_ids: Sequence[int]) -> npt.NDArray[np.int64]:
    """Output index by class id; ids outside the contract map to IGNORE."""
    index_of = np.full(max(class_ids) + 1, IGNORE, dtype=np.int64)
    index_of[list(class_ids)] = np.arange(len(class_ids))
    return index_of


def configure_loss(training_targets: npt.NDArray[np.int64], classes: int) -> nn.CrossEntropyLoss:
    """Cross-entropy weighted by 1/sqrt(pixels) of each class, so rare crops are not ignored;
    ``training_targets`` are the output indexes of the training pixels."""
    counts = np.bincount(training_targets, minlength=classes).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    return nn.CrossEntropyLoss(
        weight=torch.tensor(weights / weights[weights > 0].mean(), dtype=torch.float32), ignore_index=IGNORE
    )


def fit(
    model: nn.Module,
    loss_fn: nn.Module,
    normalised: torch.Tensor,
    targets: torch.Tensor,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train with AdamW on a one-cycle schedule over random patches; the mean loss per epoch."""
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    total_steps = config.epochs * config.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=total_steps)
    losses = []
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        epoch_loss = 0.0
        for _ in range(config.steps_per_epoch):
            cubes, labels = _patches(normalised, targets, config.patch_px, config.batch_size, rng)
            loss = loss_fn(model(cubes), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            epoch_loss += loss.item()
        losses.append(epoch_loss / config.steps_per_epoch)
        if on_epoch:
            on_epoch(epoch, losses[-1])
    log.info("trained %d steps in %.0f s", total_steps, time.perf_counter() - started)
    return losses


def held_out_metrics(
    model: nn.Module,
    normalised: torch.Tensor,
    data: TrainingData,
    contract: ModelContract,
    training: npt.NDArray[np.bool_],
    validation: npt.NDArray[np.bool_],
) -> HeldOutMetrics:
    """The model's evaluation on the ``validation`` pixels of the whole area."""
    predicted = predict_area(model, normalised)
    evaluation = evaluate(
        data.labels[validation],
        np.asarray(contract.class_ids)[predicted[validation]],
        contract.class_ids,
        [c.name for c in contract.classes],
    )
    return HeldOutMetrics(
        **evaluation,
        training_pixels=int(training.sum()),
        validation_pixels=int(validation.sum()),
        validation_fields=len(np.unique(data.fields[validation])),
    )


def _patches(
    cube: torch.Tensor, targets: torch.Tensor, size: int, batch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random patches that contain training pixels, randomly flipped and rotated."""
    _, _, height, width = cube.shape
    size = min(size, height, width)
    cubes: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    while len(cubes) < batch:
        y, x = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        label = targets[y : y + size, x : x + size]
        if not (label != IGNORE).any():
            continue
        patch = cube[:, :, y : y + size, x : x + size]
        turns = int(rng.integers(0, 4))
        patch, label = torch.rot90(patch, turns, (2, 3)), torch.rot90(label, turns, (0, 1))
        if rng.uniform() < 0.5:
            patch, label = torch.flip(patch, (3,)), torch.flip(label, (1,))
        cubes.append(patch)
        labels.append(label)
    return torch.stack(cubes), torch.stack(labels)


@torch.inference_mode()
def predict_area(model: nn.Module, normalised: torch.Tensor, rows: int = 256, halo: int = 8) -> npt.NDArray[np.int64]:
    """Class index per pixel of a whole (time, band, y, x) area, in strips with a halo."""
    model.eval()
    height = normalised.shape[2]
    out = np.empty(normalised.shape[2:], dtype=np.int64)
    for top in range(0, height, rows):
        start, stop = max(0, top - halo), min(height, top + rows + halo)
        logits = model(normalised[None, :, :, start:stop])[0]
        out[top : min(top + rows, height)] = logits.argmax(0)[
            top - start : top - start + min(rows, height - top)
        ].numpy()
    return out


def evaluate(
    truth: npt.NDArray[np.integer],
    predicted: npt.NDArray[np.integer],
    class_ids: Sequence[int],
    names: Sequence[str],
) -> Evaluation:
    """Overall accuracy, macro F1 over the classes present in ``truth``, per-class
    precision/recall/F1 and the confusion matrix (rows: truth, columns: prediction)."""
    index = {c: i for i, c in enumerate(class_ids)}
    matrix = np.zeros((len(class_ids), len(class_ids)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in truth], [index[p] for p in predicted]), 1)
    per_class: dict[str, ClassScores] = {}
    for i, name in enumerate(names):
        support = int(matrix[i].sum())
        if support == 0:
            continue
        precision = matrix[i, i] / max(matrix[:, i].sum(), 1)
        recall = matrix[i, i] / support
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support_px": support,
        }
    return {
        "overall_accuracy": round(float(np.trace(matrix) / max(matrix.sum(), 1)), 4),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4) if per_class else math.nan,
        "per_class": per_class,
        "confusion_matrix": {"classes": list(names), "rows_truth_columns_predicted": matrix.tolist()},
    }
