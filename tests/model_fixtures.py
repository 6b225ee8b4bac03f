"""Small trained models and season data for model tests (generated, never downloaded)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cropai.synth import SynthSpec, synthesize
from models.train import TrainConfig, TrainResult, train_model
from models.training_data import TrainingData, load_training_data

SEASON_BBOX = (1.600, 48.200, 1.615, 48.212)  # about 1.1 km x 1.3 km
TINY = TrainConfig(
    seed=1,
    epochs=8,
    steps_per_epoch=6,
    batch_size=8,
    patch_px=32,
    learning_rate=1e-2,
    encoder_width=16,
    context_width=8,
)


def season_data(folder: Path, seed: int = 3) -> TrainingData:
    """Generated scenes from April to September every 10 days, composited per month."""
    made = synthesize(SynthSpec(SEASON_BBOX, date(2025, 4, 1), date(2025, 9, 30), seed=seed, revisit_days=10), folder)
    return load_training_data(made.root / "scenes", made.labels_path, parcels_path=made.parcels_path)


def tiny_model(folder: Path) -> TrainResult:
    return train_model(season_data(folder), TINY)
