"""Training a crop-type model on a labelled season, and measuring it honestly.

Set-up in small steps: split the labelled fields (:func:`split_training`: held-out
fields for the reported metrics, and among the training fields a stopping set for
early stopping, both whole fields in spatial blocks), configure the contract and
the loss, fit the network on patches centred on pixels drawn class by class and
field by field (so that a big field or a common crop does not drown the rest),
keep the epoch that scored best on the stopping set, and report per-class metrics
on the held-out fields beside those of a baseline (a logistic regression on the
same composites, same split), so that a user sees whether the network earns its keep.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from cropai.crops import SYNTHETIC_LEGEND
from cropai.errors import InvalidInput
from cropai.input_check import TrainingInputStatistics, bin_labels
from cropai.legend import Legend
from models.architectures import build_for, receptive_radius
from models.contract import ClassInfo, ModelContract
from models.evaluation import Evaluation, evaluate
from models.linear import LinearClassifier, fit_linear, pixel_features, sample_pixels
from models.splits import field_classes, split_fields
from models.training_data import TrainingData

log = logging.getLogger(__name__)
IGNORE = -100  # target value CrossEntropyLoss skips: unlabelled or held-out pixels
PER_PIXEL_FAMILIES = ("presto",)  # families that see one pixel's time series, no neighbours


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    family: str = "cropnet"  # "cropnet" or "presto" (the pretrained encoder with a linear head)
    epochs: int = 40  # at most: training stops earlier when the stopping set stops improving
    steps_per_epoch: int = 40
    batch_size: int = 16
    patch_px: int = 64
    learning_rate: float = 3e-3
    validation_fraction: float = 0.2  # of each class's fields, held out for the reported metrics
    stopping_fraction: float = 0.2  # of the remaining fields, watched for early stopping
    patience: int = 10  # epochs without a better stopping score before training stops
    encoder_width: int = 64
    context_width: int = 24


class HeldOutMetrics(Evaluation):
    """A trained model's evaluation on its held-out fields, how much data each side had,
    and the baseline's evaluation on the same fields."""

    training_pixels: int
    validation_pixels: int
    validation_fields: int
    training_fields: int
    fields_per_class: dict[str, int]  # labelled fields of each class, both sides
    pixels_per_class: dict[str, int]  # labelled pixels of each class, both sides
    best_epoch: int  # the epoch kept (1-based); 0 when no epochs ran (a linear head)
    baseline: Evaluation  # logistic regression on the composites, same split


@dataclass
class TrainResult:
    model: nn.Module
    contract: ModelContract
    metrics: HeldOutMetrics
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    input_statistics: TrainingInputStatistics | None = None  # what its inputs looked like, for input checks


@dataclass(frozen=True)
class TrainOutcome:
    """What one training run made: the version (registered or not) and its held-out metrics."""

    name: str
    version: str
    registered: bool
    metrics: HeldOutMetrics
    losses: list[float]


@dataclass(frozen=True)
class Split:
    """(y, x) masks of labelled pixels: ``fitting`` trains, ``stopping`` chooses the epoch,
    ``validation`` is only measured. Each holds whole fields."""

    fitting: npt.NDArray[np.bool_]
    stopping: npt.NDArray[np.bool_]
    validation: npt.NDArray[np.bool_]


def split_training(data: TrainingData, config: TrainConfig) -> Split:
    validation = split_fields(data.labels, data.fields, config.validation_fraction, config.seed)
    training = (data.labels > 0) & ~validation
    if not training.any() or not validation.any():
        raise InvalidInput("need labelled pixels in at least two fields of a class to train and validate")
    stopping = split_fields(data.labels, data.fields, config.stopping_fraction, config.seed + 1, among=training)
    return Split(training & ~stopping, stopping, validation)


def train_model(
    data: TrainingData,
    config: TrainConfig = TrainConfig(),
    legend: Legend = SYNTHETIC_LEGEND,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fit a model of ``config.family`` on the training fields and measure it on the held-out fields."""
    torch.manual_seed(config.seed)
    split = split_training(data, config)
    contract = configure_contract(config, data, legend)
    normalised = standardise(data.cube, contract)
    class_index = _class_index(contract.class_ids)
    if config.family in PER_PIXEL_FAMILIES:
        model, losses, best_epoch = fit_pretrained_head(data, normalised, contract, class_index, split, config)
    else:
        model = build_for(contract)
        loss_fn = configure_loss(class_index[data.labels[split.fitting]], len(contract.class_ids))
        losses, best_epoch = fit(model, loss_fn, normalised, data, class_index, split, contract, config, on_epoch)
    metrics = held_out_metrics(model, normalised, data, contract, split, best_epoch, config.seed)
    return TrainResult(model.eval(), contract, metrics, losses, input_statistics(data, contract.bands))


def input_statistics(data: TrainingData, bands: Sequence[str]) -> TrainingInputStatistics:
    """The statistics of the clear (not gap-filled) composite values of the labelled fields, which
    an analysis' inputs are compared with (:func:`cropai.input_check.check_inputs`)."""
    labelled = data.labels > 0
    keep = labelled if data.clear is None else data.clear & labelled
    return TrainingInputStatistics.of_cube(data.cube, keep, bands, bin_labels(data.season.time_bins(data.year)))


def configure_contract(config: TrainConfig, data: TrainingData, legend: Legend) -> ModelContract:
    """The contract of a model trained with ``config`` on ``data``, in ``legend``'s classes."""
    means = data.cube.mean(axis=(0, 2, 3)).astype(np.float64)
    stds = data.cube.std(axis=(0, 2, 3)).astype(np.float64) + 1e-6
    if config.family in PER_PIXEL_FAMILIES:
        architecture_params = pretrained_params(data, means.tolist(), stds.tolist())
    else:
        architecture_params = {"encoder_width": config.encoder_width, "context_width": config.context_width}
    contract = ModelContract(
        architecture=config.family,
        architecture_params=architecture_params,
        season=data.season,
        band_means=means.tolist(),
        band_stds=stds.tolist(),
        classes=[ClassInfo(id=c.id, name=c.name, colour=c.colour, codes=list(c.codes)) for c in legend.classes],
    )
    # Analyses give each tile exactly the context the model reads around a pixel, and no more.
    overlap = 0 if config.family in PER_PIXEL_FAMILIES else receptive_radius(build_for(contract))
    return contract.model_copy(update={"overlap": overlap})


def pretrained_params(data: TrainingData, means: list[float], stds: list[float]) -> dict[str, object]:
    """What the pretrained encoder needs beyond the cube: the first bin's month, where it is,
    and the standardisation to undo (it reads reflectance as it was pretrained on)."""
    if data.season.bin_length != "month":
        raise InvalidInput(
            f"the presto family reads monthly time steps: the season has {data.season.bin_length} bins; "
            "choose a monthly season"
        )
    west, south, east, north = data.bbox_wgs84 or (0.0, 0.0, 0.0, 0.0)
    return {
        "start_month": data.season.start_month,
        "latitude": round((south + north) / 2, 5),
        "longitude": round((west + east) / 2, 5),
        "band_means": means,
        "band_stds": stds,
    }


def standardise(cube: npt.NDArray[np.float32], contract: ModelContract) -> torch.Tensor:
    """(time, band, y, x) reflectance -> the standardised tensor the model sees (as the Predictor does)."""
    means = np.asarray(contract.band_means, dtype=np.float32)[None, :, None, None]
    stds = np.asarray(contract.band_stds, dtype=np.float32)[None, :, None, None]
    return torch.from_numpy(np.ascontiguousarray((cube - means) / stds, dtype=np.float32))


def _class_index(class_ids: Sequence[int]) -> npt.NDArray[np.int64]:
    """Output index by class id (0..255); ids outside the contract map to IGNORE."""
    index_of = np.full(256, IGNORE, dtype=np.int64)
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
    data: TrainingData,
    class_index: npt.NDArray[np.int64],
    split: Split,
    contract: ModelContract,
    config: TrainConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[list[float], int]:
    """Train with AdamW on a one-cycle schedule over patches centred on sampled fields; keep the
    weights of the epoch that scored best (macro F1) on the stopping fields. Returns the mean
    loss per epoch and the epoch kept (1-based)."""
    rng = np.random.default_rng(config.seed)
    targets = torch.from_numpy(np.where(split.fitting, class_index[data.labels], IGNORE))
    centres = FieldSampler(data.labels, data.fields, split.fitting)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    total_steps = config.epochs * config.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=total_steps)
    losses: list[float] = []
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, copy.deepcopy(model.state_dict()))
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        epoch_loss = 0.0
        for _ in range(config.steps_per_epoch):
            cubes, labels = _patches(normalised, targets, config.patch_px, config.batch_size, centres, rng)
            loss = loss_fn(model(cubes), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            epoch_loss += loss.item()
        losses.append(epoch_loss / config.steps_per_epoch)
        if on_epoch:
            on_epoch(epoch - 1, losses[-1])
        score = _stopping_score(model, normalised, data, contract, split)
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= config.patience:
            log.info("stopped after epoch %d: no better stopping score since epoch %d", epoch, best[1])
            break
    model.load_state_dict(best[2])
    log.info("trained %d epochs in %.0f s, kept epoch %d", len(losses), time.perf_counter() - started, best[1])
    return losses, best[1]


def _stopping_score(
    model: nn.Module, normalised: torch.Tensor, data: TrainingData, contract: ModelContract, split: Split
) -> float:
    """Macro F1 on the stopping fields (the training loss when there are none)."""
    if not split.stopping.any():
        return 0.0
    predicted = predict_area(model, normalised)
    ids = np.asarray(contract.class_ids)
    scores = evaluate(
        data.labels[split.stopping], ids[predicted[split.stopping]], contract.class_ids, contract.class_names
    )
    return float(scores["macro_f1"])


class FieldSampler:
    """Draws training pixels class by class, then field by field, then pixel by pixel."""

    def __init__(
        self, labels: npt.NDArray[np.integer], fields: npt.NDArray[np.integer], among: npt.NDArray[np.bool_]
    ) -> None:
        rows, cols = np.nonzero(among)
        groups = labels[rows, cols].astype(np.int64) * (1 << 32) + fields[rows, cols].astype(np.int64)
        self._by_class: dict[int, list[npt.NDArray[np.intp]]] = {}
        for group in np.unique(groups):
            members = np.flatnonzero(groups == group)
            self._by_class.setdefault(int(group >> 32), []).append(np.stack([rows[members], cols[members]], axis=1))

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        classes = sorted(self._by_class)
        fields = self._by_class[classes[int(rng.integers(len(classes)))]]
        pixels = fields[int(rng.integers(len(fields)))]
        row, col = pixels[int(rng.integers(len(pixels)))]
        return int(row), int(col)


def _patches(
    cube: torch.Tensor, targets: torch.Tensor, size: int, batch: int, centres: FieldSampler, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches around sampled training pixels (at a random place in the patch), randomly
    flipped and rotated."""
    _, _, height, width = cube.shape
    size = min(size, height, width)
    cubes: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    for _ in range(batch):
        row, col = centres.draw(rng)
        y = int(np.clip(row - rng.integers(0, size), 0, height - size))
        x = int(np.clip(col - rng.integers(0, size), 0, width - size))
        patch, label = cube[:, :, y : y + size, x : x + size], targets[y : y + size, x : x + size]
        turns = int(rng.integers(0, 4))
        patch, label = torch.rot90(patch, turns, (2, 3)), torch.rot90(label, turns, (0, 1))
        if rng.uniform() < 0.5:
            patch, label = torch.flip(patch, (3,)), torch.flip(label, (1,))
        cubes.append(patch)
        labels.append(label)
    return torch.stack(cubes), torch.stack(labels)


def fit_pretrained_head(
    data: TrainingData,
    normalised: torch.Tensor,
    contract: ModelContract,
    class_index: npt.NDArray[np.int64],
    split: Split,
    config: TrainConfig,
) -> tuple[nn.Module, list[float], int]:
    """The pretrained encoder, frozen, with a logistic-regression head fitted on its embeddings
    of sampled training pixels (fitting and stopping fields: a linear head needs no early stop)."""
    model = build_for(contract)
    assert isinstance(model.head, nn.Linear)  # the family's linear head over the embeddings
    rows, cols = sample_pixels(data.fields, split.fitting | split.stopping, config.seed)
    embeddings = _embed_pixels(model, normalised, rows, cols)
    head = fit_linear(embeddings, class_index[data.labels[rows, cols]], len(contract.class_ids))
    with torch.no_grad():
        # The head works on standardised embeddings: fold the standardisation into its weights.
        weights = head.weights / head.stds[:, None]
        model.head.weight.copy_(torch.from_numpy(weights.T.copy()))
        model.head.bias.copy_(torch.from_numpy(head.bias - head.means @ weights))
    return model, [], 0


@torch.inference_mode()
def _embed_pixels(
    model: nn.Module, normalised: torch.Tensor, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """(pixels, embedding) of the chosen pixels: gathered into one row, embedded per pixel."""
    model.eval()
    embedded: torch.Tensor = model.embed(_gathered(normalised, rows, cols))  # type: ignore[operator]
    return np.ascontiguousarray(embedded[0, :, 0, :].T.numpy(), dtype=np.float32)


def held_out_metrics(
    model: nn.Module,
    normalised: torch.Tensor,
    data: TrainingData,
    contract: ModelContract,
    split: Split,
    best_epoch: int,
    seed: int,
) -> HeldOutMetrics:
    """The model's and the baseline's evaluation on the ``validation`` pixels."""
    validation = split.validation
    rows, cols = np.nonzero(validation)
    predicted = predict_pixels(model, normalised, rows, cols, contract.architecture in PER_PIXEL_FAMILIES)
    ids = np.asarray(contract.class_ids)
    evaluation = evaluate(data.labels[validation], ids[predicted], contract.class_ids, contract.class_names)
    training = split.fitting | split.stopping
    names = dict(zip(contract.class_ids, contract.class_names, strict=True))
    per_field = Counter(field_classes(data.labels, data.fields, data.labels > 0).values())
    pixels = np.bincount(data.labels.ravel(), minlength=256)
    return HeldOutMetrics(
        **evaluation,
        training_pixels=int(training.sum()),
        validation_pixels=int(validation.sum()),
        validation_fields=len(np.unique(data.fields[validation & (data.fields > 0)])),
        training_fields=len(np.unique(data.fields[training & (data.fields > 0)])),
        fields_per_class={names[c]: per_field.get(c, 0) for c in contract.class_ids},
        pixels_per_class={names[c]: int(pixels[c]) for c in contract.class_ids},
        best_epoch=best_epoch,
        baseline=baseline_metrics(data, contract, split, seed),
    )


def baseline_metrics(data: TrainingData, contract: ModelContract, split: Split, seed: int) -> Evaluation:
    """A logistic regression on the composites (time x band per pixel), fitted on the same
    training fields and measured on the same held-out fields."""
    baseline = fit_baseline(data, contract, split.fitting | split.stopping, seed)
    rows, cols = np.nonzero(split.validation)
    predicted = baseline.predict(pixel_features(data.cube, rows, cols))
    ids = np.asarray(contract.class_ids)
    return evaluate(data.labels[rows, cols], ids[predicted], contract.class_ids, contract.class_names)


def fit_baseline(
    data: TrainingData, contract: ModelContract, among: npt.NDArray[np.bool_], seed: int
) -> LinearClassifier:
    """The baseline on sampled pixels of the fields in ``among``, in the contract's classes."""
    class_index = _class_index(contract.class_ids)
    rows, cols = sample_pixels(data.fields, among, seed)
    return fit_linear(
        pixel_features(data.cube, rows, cols), class_index[data.labels[rows, cols]], len(contract.class_ids)
    )


def transfer_metrics(
    model: nn.Module, contract: ModelContract, baseline: LinearClassifier, other: TrainingData
) -> tuple[Evaluation, Evaluation]:
    """How a trained model and its baseline map another labelled season (another year, area or
    calendar): their evaluations on every labelled pixel of ``other``."""
    labelled = other.labels > 0
    rows, cols = np.nonzero(labelled)
    per_pixel = contract.architecture in PER_PIXEL_FAMILIES
    predicted = predict_pixels(model, standardise(other.cube, contract), rows, cols, per_pixel)
    ids, truth = np.asarray(contract.class_ids), other.labels[labelled]
    from_baseline = baseline.predict(pixel_features(other.cube, rows, cols))
    return (
        evaluate(truth, ids[predicted], contract.class_ids, contract.class_names),
        evaluate(truth, ids[from_baseline], contract.class_ids, contract.class_names),
    )


def predict_pixels(
    model: nn.Module,
    normalised: torch.Tensor,
    rows: npt.NDArray[np.intp],
    cols: npt.NDArray[np.intp],
    per_pixel: bool,
) -> npt.NDArray[np.int64]:
    """Class index at the chosen pixels: a per-pixel model sees only them, a spatial one the area."""
    if not per_pixel:
        return predict_area(model, normalised)[rows, cols]
    with torch.inference_mode():
        model.eval()
        return np.asarray(model(_gathered(normalised, rows, cols))[0, :, 0, :].argmax(0).numpy(), dtype=np.int64)


def _gathered(normalised: torch.Tensor, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]) -> torch.Tensor:
    """The chosen pixels of a (time, band, y, x) area as one row, (1, time, band, 1, pixels): what a
    per-pixel family reads without the rest of the area."""
    return normalised[:, :, torch.from_numpy(rows), torch.from_numpy(cols)][None, :, :, None, :]


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
