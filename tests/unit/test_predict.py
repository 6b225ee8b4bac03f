"""The predictor's checks and batching, on a small random model."""

import numpy as np
import pytest
import torch

from cropai.errors import InvalidInput
from models.contract import ModelContract
from models.cropnet import CropNet
from models.predict import Predictor
from models.registry import LoadedModel


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    contract = ModelContract(
        band_means=[0.1] * 10, band_stds=[0.05] * 10, architecture_params={"encoder_width": 8, "context_width": 4}
    )
    model = CropNet(10, 6, len(contract.classes), encoder_width=8, context_width=4)
    return Predictor(LoadedModel(model.eval(), contract, "tiny", "1.0.0", "0" * 64), device="cpu")


def cubes(batch: int = 3, time: int = 6, bands: int = 10, size: int = 24) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 0.5, (batch, time, bands, size, size)).astype(np.float32)


def test_probabilities_per_class_sum_to_one(predictor: Predictor) -> None:
    probabilities = predictor.predict(cubes())
    assert probabilities.shape == (3, 13, 24, 24) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_small_batches_give_the_same_result(predictor: Predictor) -> None:
    data = cubes(batch=5)
    whole = predictor.predict(data)
    predictor.max_batch = 2
    try:
        assert predictor.batch_size(24 * 24) == 2
        assert np.allclose(predictor.predict(data), whole, atol=1e-6)
    finally:
        predictor.max_batch = None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (cubes(bands=11), r"input has 11 bands: tiny@1.0.0 expects 10 \(B02, B03"),
        (cubes(time=4), r"input has 4 time bins: tiny@1.0.0 expects 6 \(6 monthly bins from 1 April"),
        (cubes()[0], "expected 5 dimensions"),
        (cubes().astype(np.uint16), "expected float reflectance"),
    ],
    ids=["bands", "time-bins", "dimensions", "dtype"],
)
def test_inputs_that_break_the_contract_are_refused(predictor: Predictor, data: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        predictor.predict(data)


def test_nan_input_is_refused_with_what_to_do(predictor: Predictor) -> None:
    data = cubes()
    data[0, 2, 3, 4, 5] = np.nan
    with pytest.raises(InvalidInput, match="contains NaN: fill gaps first"):
        predictor.predict(data)
