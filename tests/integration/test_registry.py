"""Model versions through the registry, on the folder store and the S3 server."""

import hashlib
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy import update

from cropai.config import Settings
from cropai.db import ModelVersion, session_scope, upgrade_database
from cropai.errors import InvalidInput, ModelIntegrityError, ModelNotFound, ModelVersionExists
from cropai.input_check import TrainingInputStatistics
from cropai.services import Services, services
from cropai.storage import ObjectStore
from models.contract import ModelContract
from models.cropnet import CropNet
from models.predict import Predictor, load_predictor
from models.registry import DEFAULT_MODEL_DIR, ModelRef, load, register, register_folder, resolve
from models.versions import model_card


@pytest.fixture
def registry(settings: Settings, store: ObjectStore) -> Services:
    svc = services(settings)
    upgrade_database(svc.engine)
    return Services(svc.engine, svc.sessions, store)


def small_version() -> tuple[dict, ModelContract]:
    torch.manual_seed(0)
    contract = ModelContract(
        band_means=[0.1] * 10, band_stds=[0.05] * 10, architecture_params={"encoder_width": 8, "context_width": 4}
    )
    model = CropNet(10, 6, len(contract.classes), encoder_width=8, context_width=4).eval()
    return model.state_dict(), contract


def test_a_version_round_trips_with_the_same_predictions(registry: Services) -> None:
    weights, contract = small_version()
    register(registry.store, registry.sessions, "tiny", "1.0.0", weights, contract, {"macro_f1": 0.5})
    loaded = load(registry.store, registry.sessions, "tiny@1.0.0")
    assert loaded.contract == contract
    assert registry.store.exists("models/tiny/1.0.0/weights.pt") and registry.store.exists(
        "models/tiny/1.0.0/metadata.json"
    )
    cube = np.random.default_rng(0).uniform(0, 0.4, (1, 6, 10, 16, 16)).astype(np.float32)
    original = CropNet(10, 6, len(contract.classes), 8, 4)
    original.load_state_dict(weights)
    expected = Predictor(type(loaded)(original.eval(), contract, "tiny", "1.0.0", "x")).predict(cube)
    assert np.allclose(Predictor(loaded).predict(cube), expected)


def test_latest_is_the_highest_version_number(registry: Services) -> None:
    weights, contract = small_version()
    for version in ("1.2.0", "1.10.0", "1.9.3"):
        register(registry.store, registry.sessions, "tiny", version, weights, contract)
    assert resolve(registry.sessions, "tiny@latest").version == "1.10.0"
    assert resolve(registry.sessions, "tiny").version == "1.10.0"


def test_versions_are_immutable(registry: Services) -> None:
    weights, contract = small_version()
    register(registry.store, registry.sessions, "tiny", "1.0.0", weights, contract)
    with pytest.raises(ModelVersionExists, match=r"tiny@1\.0\.0 is registered already"):
        register(registry.store, registry.sessions, "tiny", "1.0.0", weights, contract)


def test_unknown_version_names_the_known_ones(registry: Services) -> None:
    weights, contract = small_version()
    register(registry.store, registry.sessions, "tiny", "1.0.0", weights, contract)
    with pytest.raises(ModelNotFound, match=r"no model version tiny@2.0.0; known versions: tiny@1.0.0"):
        load(registry.store, registry.sessions, "tiny@2.0.0")


@pytest.mark.parametrize("text", ["Tiny@1", "tiny@", "tiny@../x", "@1.0", "tiny@1 0"])
def test_malformed_references_are_refused(text: str) -> None:
    if text == "tiny@":
        assert ModelRef.parse(text) == ModelRef("tiny", "latest")
        return
    with pytest.raises(InvalidInput, match="expected name@version"):
        ModelRef.parse(text)


def test_changed_weights_fail_the_checksum(registry: Services) -> None:
    weights, contract = small_version()
    row = register(registry.store, registry.sessions, "tiny", "1.0.0", weights, contract)
    registry.store.put("models/tiny/1.0.0/weights.pt", registry.store.get("models/tiny/1.0.0/weights.pt") + b"\0")
    with pytest.raises(ModelIntegrityError, match=f"expected {row.checksum_sha256}"):
        load(registry.store, registry.sessions, "tiny@1.0.0")


def test_corrupt_weights_are_reported(registry: Services) -> None:
    weights, contract = small_version()
    register(registry.store, registry.sessions, "tiny", "1.0.0", weights, contract)
    garbage = b"not a torch file"
    registry.store.put("models/tiny/1.0.0/weights.pt", garbage)
    with session_scope(registry.sessions) as session:  # a row that agrees with the garbage
        session.execute(update(ModelVersion).values(checksum_sha256=hashlib.sha256(garbage).hexdigest()))
    with pytest.raises(ModelIntegrityError, match="not a readable torch state dict"):
        load(registry.store, registry.sessions, "tiny@1.0.0")


def test_the_shipped_default_model_registers_and_loads(registry: Services) -> None:
    row = register_folder(registry.store, registry.sessions, DEFAULT_MODEL_DIR)
    assert (row.name, row.version) == ("cropnet", "1.0.0")
    assert row.metrics["macro_f1"] >= 0.85
    predictor = load_predictor(registry.store, registry.sessions, "cropnet@latest")
    assert predictor is load_predictor(registry.store, registry.sessions, "cropnet@1.0.0")  # loaded once
    assert predictor.contract.tile_size == 256
    registered = resolve(registry.sessions, "cropnet@1.0.0")
    statistics = TrainingInputStatistics.from_record(registered.training["input_statistics"])
    assert statistics.bins == ("2025-04", "2025-05", "2025-06", "2025-07", "2025-08", "2025-09")
    assert statistics.bands == tuple(predictor.contract.bands) and (statistics.count > 0).all()
    assert model_card(registered)["input_statistics"]["bands"] == 10


def test_a_pretrained_encoder_version_round_trips_through_the_predictor(registry: Services) -> None:
    from models.presto import PrestoClassifier

    torch.manual_seed(0)
    params: dict[str, Any] = {
        "start_month": 10,
        "latitude": 50.7,
        "longitude": 4.1,
        "band_means": [0.1] * 10,
        "band_stds": [0.05] * 10,
    }
    contract = ModelContract(
        architecture="presto", architecture_params=params, band_means=[0.1] * 10, band_stds=[0.05] * 10
    )
    model = PrestoClassifier(10, 6, len(contract.classes), **params).eval()
    torch.nn.init.normal_(model.head.weight)
    register(registry.store, registry.sessions, "encoder", "1.0.0", model.state_dict(), contract)
    loaded = load(registry.store, registry.sessions, "encoder@1.0.0")
    cube = np.random.default_rng(0).uniform(0, 0.4, (1, 6, 10, 4, 5)).astype(np.float32)
    expected = Predictor(type(loaded)(model, contract, "encoder", "1.0.0", "x")).predict(cube)
    assert np.allclose(Predictor(loaded).predict(cube), expected, atol=1e-6)
