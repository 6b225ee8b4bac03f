"""Training tasks: make the default synthetic training set, gather a labelled season, train, register."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from sqlalchemy.orm import Session, sessionmaker

from cropai.config import load_settings
from cropai.crops import SYNTHETIC_LEGEND
from cropai.legend import Legend
from cropai.services import services
from cropai.synth import synthesize
from cropai.training_season import ParcelTraining, labelled_season
from models.registry import LATEST, ModelRef, list_versions, register, resolve
from models.train import TrainConfig, TrainOutcome, TrainResult, train_model
from models.training_data import TrainingData, default_training_spec, load_training_data

ENCODERS = {
    "cropnet": "none: CropNet trained from scratch",
    "presto": "Presto (Tseng et al. 2023) pretrained encoder, frozen, S2-only inputs; linear head",
}


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
    """Fit a model on label rasters over a folder of scenes, measure it on held-out fields, register it."""
    data = load_training_data(
        Path(scenes_dir), Path(labels_path), parcels_path=Path(parcels_path) if parcels_path else None
    )
    described = data_description or f"scenes {scenes_dir}, labels {labels_path}, parcels {parcels_path}"
    return _train(data, SYNTHETIC_LEGEND, name, version, TrainConfig(**config), register_version, described, True)


@task(cache_policy=NO_CACHE)
def train_on_parcels(
    request: ParcelTraining, name: str, version: str | None, config: dict[str, Any], register_version: bool
) -> TrainOutcome:
    """Fit a model on labelled parcels and the catalogue's scenes of their season; register it.
    Every check (column, legend, classes, scenes, bins) happens before anything is registered."""
    svc = services()
    parcels = request.classified_parcels(svc.sessions)
    season = labelled_season(
        svc.sessions,
        svc.store,
        parcels,
        request.season,
        request.window,
        request.inner_buffer_m,
        request.max_cloud_fraction,
    )
    data = TrainingData.of_season(season, request.season)
    settings = TrainConfig(**config)
    return _train(data, parcels.legend, name, version, settings, register_version, request.describe(), False)


def _train(
    data: TrainingData,
    legend: Legend,
    name: str,
    version: str | None,
    config: TrainConfig,
    register_version: bool,
    described: str,
    synthetic_only: bool,
) -> TrainOutcome:
    logger = get_run_logger()
    logger.info("training on %s: %d time bins x %d bands x %d x %d px", described, *data.cube.shape)
    result = train_model(data, config, legend, on_epoch=lambda e, loss: logger.info("epoch %d: loss %.4f", e + 1, loss))
    svc = services()
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
            model_card(data, result, config, described, synthetic_only),
            description=f"{config.family} trained on {described}",
        )
    return TrainOutcome(name, version, register_version, result.metrics, result.losses)


def model_card(
    data: TrainingData, result: TrainResult, config: TrainConfig, described: str, synthetic_only: bool
) -> dict[str, Any]:
    """How the version was made, as ``cropai models show`` and ``GET /models`` show it: the region,
    season and data it learnt from, its encoder, whether it ever saw real scenes, and the statistics
    of its inputs that each analysis' inputs are checked against."""
    return {
        "config": dataclasses.asdict(config),
        "data": described,
        "synthetic_only": synthetic_only,
        "region_bbox_wgs84": list(data.bbox_wgs84) if data.bbox_wgs84 else None,
        "season": data.season.model_dump(),
        "season_described": data.season.describe(),
        "year": data.year,
        "encoder": ENCODERS.get(config.family, config.family),
        "input_scenes": len(data.input_scenes),
        "losses": [round(v, 5) for v in result.losses],
        "input_statistics": result.input_statistics.as_record() if result.input_statistics else None,
    }


def next_version(sessions: sessionmaker[Session], name: str) -> str:
    """1.0.0 for a new name, else the latest version with its last number raised."""
    if not list_versions(sessions, name):
        return "1.0.0"
    latest = resolve(sessions, ModelRef(name, LATEST)).version
    head, _, last = latest.rpartition(".")
    return f"{head}.{int(last) + 1}" if last.isdigit() and head else f"{latest}.1"
