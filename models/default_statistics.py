"""The shipped default version's training input statistics, written into its ``metadata.json``.

The default model (``models/default/cropnet/1.0.0``) was trained on a generated season
(:func:`models.training_data.default_training_spec`, seed of its training config). This
generates that season again, builds its training data as ``cropai train`` does, and stores
the statistics of its inputs in the metadata's ``training["input_statistics"]``, so that
registering the shipped version carries them. The weights are left as they are.
Deterministic: the same seed makes the same scenes and so the same statistics.

    .venv/bin/python -m models.default_statistics [--workdir /tmp/cropai-default-season]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from cropai.input_check import TrainingInputStatistics
from cropai.season import Season
from cropai.synth import synthesize
from models.registry import DEFAULT_MODEL_DIR, METADATA_FILE
from models.train import input_statistics
from models.training_data import default_training_spec, load_training_data


def default_input_statistics(metadata: dict[str, Any], workdir: Path) -> TrainingInputStatistics:
    """The statistics of the default version's training inputs, from its season generated in ``workdir``."""
    training, contract = metadata["training"], metadata["contract"]
    folder = workdir / f"synthetic-seed{training['config']['seed']}"
    if not (folder / "manifest.json").exists():
        synthesize(default_training_spec(training["config"]["seed"]), folder)
    data = load_training_data(
        folder / "scenes", folder / "labels.tif", Season.of_contract(contract), folder / "parcels.geojson"
    )
    return input_statistics(data, contract["bands"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cropai-default-season")
    args = parser.parse_args()
    path = DEFAULT_MODEL_DIR / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["training"]["input_statistics"] = default_input_statistics(metadata, args.workdir).as_record()
    path.write_text(json.dumps(metadata, indent=2))


if __name__ == "__main__":
    main()
