"""The architecture, training and metrics on generated data (no servers)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.architectures import build_for, receptive_radius
from models.contract import ModelContract
from models.cropnet import CropNet
from models.evaluation import evaluate
from models.registry import DEFAULT_MODEL_DIR, METADATA_FILE
from models.splits import split_fields
from models.train import train_model
from models.training_data import TrainingData
from tests.model_fixtures import TINY, season_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TrainingData:
    return season_data(tmp_path_factory.mktemp("season"))


def test_cropnet_maps_a_cube_to_per_class_logits() -> None:
    model = CropNet(bands=10, time_bins=6, classes=13)
    assert model(torch.zeros(2, 6, 10, 32, 40)).shape == (2, 13, 32, 40)


@pytest.mark.parametrize("widths", [(64, 24), (8, 4)])
def test_the_receptive_radius_is_how_far_a_changed_pixel_reaches(widths: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = CropNet(bands=10, time_bins=6, classes=5, encoder_width=widths[0], context_width=widths[1]).eval()
    cube = torch.rand(1, 6, 10, 21, 21)
    changed = cube.clone()
    changed[..., 10, 10] += 1.0  # one pixel of the centre, every band and bin
    with torch.inference_mode():
        moved = (model(changed) - model(cube)).abs().amax(dim=(0, 1)) > 0
    rows, cols = np.nonzero(moved.numpy())
    reach = max(abs(rows - 10).max(), abs(cols - 10).max())
    assert receptive_radius(model) == reach == 2


def test_the_shipped_model_gives_tiles_its_receptive_radius_as_halo() -> None:
    metadata = json.loads((DEFAULT_MODEL_DIR / METADATA_FILE).read_text())
    contract = ModelContract(**metadata["contract"])
    assert contract.overlap == receptive_radius(build_for(contract)) == 2


def test_season_data_is_a_gap_free_monthly_cube(data: TrainingData) -> None:
    assert data.cube.shape[:2] == (6, 10) and data.year == 2025
    assert not np.isnan(data.cube).any()
    assert data.cube.shape[2:] == data.labels.shape == data.fields.shape


def test_split_never_puts_one_field_on_both_sides(data: TrainingData) -> None:
    validation = split_fields(data.labels, data.fields, 0.2, seed=0)
    training = (data.labels > 0) & ~validation
    assert not set(np.unique(data.fields[validation])) & set(np.unique(data.fields[training]))
    assert 0.05 < validation.sum() / (data.labels > 0).sum() < 0.5


def test_training_a_tiny_model_lowers_the_loss(data: TrainingData) -> None:
    result = train_model(data, TINY)
    assert result.losses[-1] < 0.7 * result.losses[0]
    assert 0 <= result.metrics["macro_f1"] <= 1
    assert result.metrics["validation_pixels"] > 0


def test_metrics_of_a_known_confusion() -> None:
    truth = np.array([1, 1, 1, 1, 3, 3])
    predicted = np.array([1, 1, 1, 3, 3, 3])
    metrics = evaluate(truth, predicted, [1, 3, 4], ["wheat", "maize", "rapeseed"])
    assert metrics["overall_accuracy"] == pytest.approx(5 / 6, abs=1e-4)
    assert metrics["per_class"]["wheat"] == {"precision": 1.0, "recall": 0.75, "f1": 0.8571, "support_px": 4}
    assert metrics["macro_f1"] == pytest.approx((0.8571 + 0.8) / 2, abs=1e-4)  # rapeseed is absent: not averaged
    assert metrics["confusion_matrix"]["rows_truth_columns_predicted"] == [[3, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_training_without_two_fields_of_any_class_is_refused(tmp_path: Path) -> None:
    from cropai.errors import InvalidInput

    lonely = TrainingData(
        np.zeros((6, 10, 8, 8), np.float32), np.ones((8, 8), np.int64), np.ones((8, 8), np.int32), 2025
    )
    with pytest.raises(InvalidInput, match="two fields"):
        train_model(lonely, TINY)


def test_without_parcels_connected_patches_of_one_class_are_the_fields(tmp_path: Path) -> None:
    from datetime import date

    from cropai.synth import SynthSpec, synthesize
    from models.training_data import load_training_data
    from tests.model_fixtures import SEASON_BBOX

    made = synthesize(SynthSpec(SEASON_BBOX, date(2025, 4, 1), date(2025, 9, 30), seed=3, revisit_days=30), tmp_path)
    data = load_training_data(made.root / "scenes", made.labels_path)
    labelled = data.labels > 0
    assert (data.fields[labelled] > 0).all()
    # every derived field holds one class only
    for field_id in np.unique(data.fields[labelled])[:20]:
        assert len(np.unique(data.labels[data.fields == field_id])) == 1


def test_the_same_seed_trains_the_same_model(data: TrainingData) -> None:
    first, second = train_model(data, TINY), train_model(data, TINY)
    assert first.metrics == second.metrics
    for name, weights in first.model.state_dict().items():
        assert torch.equal(weights, second.model.state_dict()[name]), name


def test_metrics_report_fields_per_class_and_the_baseline_beside_the_network(data: TrainingData) -> None:
    metrics = train_model(data, TINY).metrics
    labelled_classes = {c for c, n in metrics["fields_per_class"].items() if n}
    assert set(metrics["per_class"]) <= labelled_classes
    assert set(metrics["baseline"]["per_class"]) == set(metrics["per_class"])
    assert metrics["baseline"]["overall_accuracy"] > 0.5  # generated crops are separable by their spectra
    assert 1 <= metrics["best_epoch"] <= TINY.epochs


def test_validation_fields_come_in_spatial_blocks_and_each_class_keeps_a_training_field() -> None:
    labels = np.zeros((100, 100), np.int64)
    fields = np.zeros((100, 100), np.int32)
    for index in range(25):  # a 5 x 5 lattice of 20 px fields, classes 1..3 by column
        row, col = divmod(index, 5)
        fields[row * 20 : row * 20 + 18, col * 20 : col * 20 + 18] = index + 1
        labels[row * 20 : row * 20 + 18, col * 20 : col * 20 + 18] = col % 3 + 1
    validation = split_fields(labels, fields, 0.2, seed=0, block_px=40)
    held = set(np.unique(fields[validation]))
    blocks = {((f - 1) // 5 // 2, (f - 1) % 5 // 2) for f in held}
    assert 0 < len(held) < 25 and len(blocks) < len(held)  # whole blocks, not scattered fields
    for class_id in (1, 2, 3):
        assert (labels[~validation] == class_id).any()


def test_the_pretrained_family_fits_a_head_on_its_frozen_encoder(data: TrainingData) -> None:
    from dataclasses import replace

    from models.presto import load_presto_encoder

    result = train_model(data, replace(TINY, family="presto"))
    assert result.contract.architecture == "presto"
    assert result.contract.architecture_params["start_month"] == 4
    published = load_presto_encoder().state_dict()
    encoder = result.model.get_submodule("encoder")
    for name, weights in encoder.state_dict().items():
        assert torch.equal(weights, published[name]), name  # frozen: the published weights, unchanged
    assert result.metrics["best_epoch"] == 0 and result.losses == []
    assert result.metrics["overall_accuracy"] > 0.3
