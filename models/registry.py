"""The registry of model versions: weights and metadata under
``models/{name}/{version}/`` in the object store, a ``model_versions`` row each.

Versions are immutable. ``name@latest`` is the highest version (compared as
version numbers when they parse as such, else by registration time). Every load
verifies the weights' SHA-256 against the catalogue before torch reads a byte.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from torch import nn

from cropai.db import ModelVersion, session_scope
from cropai.errors import InvalidInput, ModelIntegrityError, ModelNotFound, ModelVersionExists
from cropai.storage import ObjectStore
from models.architectures import build_for
from models.contract import ModelContract
from models.versions import LATEST, ModelRef, list_versions, resolve

__all__ = ["LATEST", "ModelRef", "list_versions", "resolve"]  # re-exported: callers that load weights use one module

WEIGHTS_FILE = "weights.pt"
METADATA_FILE = "metadata.json"
# The default model version ships with the project (trained on synthetic scenes; see the README).
DEFAULT_MODEL_DIR = Path(__file__).parent / "default" / "cropnet" / "1.0.0"


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    contract: ModelContract
    name: str
    version: str
    checksum_sha256: str


def prefix(name: str, version: str) -> str:
    return f"models/{name}/{version}"


def register(
    store: ObjectStore,
    sessions: sessionmaker[Session],
    name: str,
    version: str,
    state_dict: dict[str, torch.Tensor],
    contract: ModelContract,
    metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    description: str = "",
) -> ModelVersion:
    """Store weights and metadata and add the catalogue row; an existing version is refused."""
    ModelRef.parse(f"{name}@{version}")
    if version == LATEST:
        raise InvalidInput("'latest' is a reference, not a version: register a concrete version such as 1.0.0")
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    weights = buffer.getvalue()
    return _register_bytes(
        store, sessions, name, version, weights, contract, dict(metrics or {}), dict(training or {}), description
    )


def register_folder(store: ObjectStore, sessions: sessionmaker[Session], folder: Path) -> ModelVersion:
    """Register a version from a folder holding ``weights.pt`` and ``metadata.json`` (as shipped)."""
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
        weights = (folder / WEIGHTS_FILE).read_bytes()
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder}: expected {WEIGHTS_FILE} and a JSON {METADATA_FILE}: {exc}") from None
    actual = hashlib.sha256(weights).hexdigest()
    if metadata.get("checksum_sha256") not in (None, actual):
        raise ModelIntegrityError(
            f"{folder / WEIGHTS_FILE}: SHA-256 {actual} does not match {metadata['checksum_sha256']} in {METADATA_FILE}"
        )
    _load_state_dict(weights, str(folder / WEIGHTS_FILE))
    return _register_bytes(
        store,
        sessions,
        metadata["name"],
        metadata["version"],
        weights,
        ModelContract(**metadata["contract"]),
        metadata.get("metrics", {}),
        metadata.get("training", {}),
        metadata.get("description", ""),
    )


def ensure_default_model(store: ObjectStore, sessions: sessionmaker[Session]) -> ModelVersion:
    """Register the shipped default version unless it is registered already."""
    metadata = json.loads((DEFAULT_MODEL_DIR / METADATA_FILE).read_text())
    try:
        return resolve(sessions, f"{metadata['name']}@{metadata['version']}")
    except ModelNotFound:
        return register_folder(store, sessions, DEFAULT_MODEL_DIR)


def _register_bytes(
    store: ObjectStore,
    sessions: sessionmaker[Session],
    name: str,
    version: str,
    weights: bytes,
    contract: ModelContract,
    metrics: dict[str, Any],
    training: dict[str, Any],
    description: str,
) -> ModelVersion:
    """Store the weights and metadata under the version's prefix, then add its catalogue row."""
    with sessions() as session:
        if session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)):
            raise ModelVersionExists(f"model {name}@{version} is registered already; versions are immutable")
    checksum = hashlib.sha256(weights).hexdigest()
    metadata = {
        "name": name,
        "version": version,
        "format": "state_dict",
        "checksum_sha256": checksum,
        "contract": contract.model_dump(),
        "metrics": metrics,
        "training": training,
        "description": description,
    }
    key_prefix = prefix(name, version)
    store.put(f"{key_prefix}/{WEIGHTS_FILE}", weights, content_type="application/octet-stream")
    store.put(f"{key_prefix}/{METADATA_FILE}", json.dumps(metadata, indent=2).encode(), content_type="application/json")
    return _catalogue(
        sessions,
        ModelVersion(
            name=name,
            version=version,
            format="state_dict",
            object_prefix=key_prefix,
            checksum_sha256=checksum,
            contract=metadata["contract"],
            metrics=metrics,
            training=training,
            description=description,
        ),
    )


def _catalogue(sessions: sessionmaker[Session], row: ModelVersion) -> ModelVersion:
    """Add the stored version's row; a version registered meanwhile by another process is refused."""
    try:
        with session_scope(sessions) as session:
            session.add(row)
    except IntegrityError:
        raise ModelVersionExists(f"model {row.name}@{row.version} was registered concurrently") from None
    return row


def load(store: ObjectStore, sessions: sessionmaker[Session], reference: str | ModelRef) -> LoadedModel:
    """Resolve, fetch, verify and instantiate a model version (in eval mode, on the CPU)."""
    row = resolve(sessions, reference)
    weights_key = f"{row.object_prefix}/{WEIGHTS_FILE}"
    weights = store.get(weights_key)
    actual = hashlib.sha256(weights).hexdigest()
    if actual != row.checksum_sha256:
        raise ModelIntegrityError(
            f"weights of {row.name}@{row.version} ({weights_key}) have SHA-256 {actual}, "
            f"expected {row.checksum_sha256}: the object was changed or damaged; register a new version"
        )
    contract = ModelContract(**row.contract)
    model = build_for(contract)
    try:
        model.load_state_dict(_load_state_dict(weights, weights_key))
    except RuntimeError as exc:
        raise ModelIntegrityError(f"weights of {row.name}@{row.version} do not fit its architecture: {exc}") from None
    return LoadedModel(model.eval(), contract, row.name, row.version, row.checksum_sha256)


def _load_state_dict(weights: bytes, where: str) -> dict[str, torch.Tensor]:
    try:
        state: dict[str, torch.Tensor] = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelIntegrityError(f"{where} is not a readable torch state dict: {exc}") from None
    return state
