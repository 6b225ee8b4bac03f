"""Training tasks: make the default synthetic training set, train, register."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from sqlalchemy.orm import Session, sessionmaker

from cropai.config import load_settings
from cropai.services import services
from cropai.synth import synthesize
from models.registry import LATEST, ModelRef, list_versions, register, resolve
from models.train import TrainConfig, TrainOutcome, default_training_spec, load_training_data, train_model


def synthetic_training_description(seed: int) -> str:
    spec = default_training_spec(seed)
    return (
        f"synthetic scenes (cropai.synth) over bbox {list(spec.bbox_wgs84)}, {spec.start} to {spec.end}, "
        f"every {spec.revisit_days} days, seed {seed}: no real satellite data"
    )


@task(cache_policy=NO_CACHE)
def synthesise_training_set(seed: int) -> str:
    """Generate (or reuse) the default synthetic training set; returns its folder."""
    folder = load_settings().home / "training" / f"synthetic-seed{seed}"
    if not (folder / "manifest.json").exists():
        synthesize(default_training_spec(seed), folder)
    return str(folder)


@task(cache_policy=NO_CACHE)
def train_and_register(
    scenes_dir: str,
    labels_path: str,
    parcels_path: str | None,
    name: str,
    version: str | None,
    config: dict[str, Any],
    register_version: bool,
    data_description: str | None = None,
) -> TrainOutcome:
    """Fit a model on labelled rasters, measure it on held-out fields and register it."""
    logger = get_run_logger()
    svc = services()
    settings = TrainConfig(**config)
    data = load_training_data(
        Path(scenes_dir), Path(labels_path), parcels_path=Path(parcels_path) if parcels_path else None
    )
    logger.info("training on %s: %d time bins x %d bands x %d x %d px", scenes_dir, *data.cube.shape)
    result = train_model(data, settings, on_epoch=lambda e, loss: logger.info("epoch %d: loss %.4f", e + 1, loss))
    described = data_description or f"scenes {scenes_dir}, labels {labels_path}, parcels {parcels_path}"
    training = {
        "config": dataclasses.asdict(settings),
        "data": described,
        "year": data.year,
        "losses": [round(v, 5) for v in result.losses],
    }
    version = version or next_version(svc.sessions, name)
    if register_version:
        register(
            svc.store,
            svc.sessions,
            name,
            version,
            result.model.state_dict(),
            result.contract,
            result.metrics,
            training,
            description=f"CropNet trained on {described}",
        )
    return TrainOutcome(name, version, register_version, result.metrics, result.losses)


def next_version(sessions: sessionmaker[Session], name: str) -> str:
    """1.0.0 for a new name, else the latest version with its last number raised."""
    if not list_versions(sessions, name):
        return "1.0.0"
    latest = resolve(sessions, ModelRef(name, LATEST)).version
    head, _, last = latest.rpartition(".")
    return f"{head}.{int(last) + 1}" if last.isdigit() and head else f"{latest}.1"
