"""Planning a large analysis, without mapping it: how many tiles, batches and task runs a
10,000 km² AOI (100 km x 100 km, four times the default request limit) becomes, how long
planning takes and how large the plan is that every batch task receives.

Scenes are stood in by catalogue records only (a footprint and a date every 5 days over the
AOI): planning reads no pixels. The default model's contract shapes the tiles.

    .venv/bin/python bench/plan.py [--size-km 100] [--worker-memory 2GB]
"""

from __future__ import annotations

import argparse
import pickle
import resource
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from dask.utils import parse_bytes
from shapely.geometry import box, mapping

from cropai.analysis import CandidateScene, ModelInputs, make_plan
from cropai.analysis_records import AnalysisRequest
from models.registry import DEFAULT_MODEL_DIR

METRES_PER_DEGREE = 111_320.0
LAT = 48.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-km", type=float, default=100.0)
    parser.add_argument("--worker-memory", default="2GB", help="the workers' memory limit the batches are sized to")
    args = parser.parse_args()
    memory = parse_bytes(args.worker_memory)
    height = args.size_km * 1000 / METRES_PER_DEGREE
    width = height / 0.6665  # cos(48.2 degrees)
    aoi = mapping(box(1.5, LAT, 1.5 + width, LAT + height))
    footprint = mapping(box(1.4, LAT - 0.1, 1.6 + width, LAT + height + 0.1))
    scenes = [
        CandidateScene(
            f"scenes/s{day:03d}/x.tif", datetime(2025, 4, 1, 10, 30, tzinfo=UTC) + timedelta(days=day), footprint
        )
        for day in range(0, 183, 5)
    ]
    request = AnalysisRequest(uuid.uuid4(), aoi, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0")
    started = time.perf_counter()
    plan = make_plan(request, default_inputs(), scenes, worker_memory=memory)
    seconds = time.perf_counter() - started
    size = len(pickle.dumps(plan))
    tiles = len(plan.tiles.tiles)
    print(
        f"AOI {args.size_km:g} km x {args.size_km:g} km: grid {plan.grid.width:,} x {plan.grid.height:,} px "
        f"({plan.grid.width * plan.grid.height / 1e6:,.0f} Mpix), {len(plan.scenes)} scenes, {len(plan.time_bins)} bins"
    )
    sizes = sorted(b.pixels / 1e6 for b in plan.tiles.batches)
    print(
        f"tiles {tiles:,} (halo {plan.tiles.halo} px), batches (= batch task runs) {len(plan.tiles.batches):,} "
        f"of {sizes[0]:.2f}-{sizes[-1]:.2f} Mpix for workers of {args.worker_memory}"
    )
    print(f"planned in {seconds:.1f} s; the plan pickles to {size / 1e6:.2f} MB (sent with each batch task)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


def default_inputs() -> ModelInputs:
    """The shipped model's planning inputs, read from its metadata as the registry stores them."""
    import json

    from cropai.db import ModelVersion

    metadata = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    version = ModelVersion(
        name=metadata["name"], version=metadata["version"], contract=metadata["contract"], training=metadata["training"]
    )
    return ModelInputs.of_version(version)


if __name__ == "__main__":
    main()
