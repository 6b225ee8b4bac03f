"""Analysis throughput: a bare loop against the full ``analyze`` flow on Dask.

On a generated AOI of 20 km x 20 km (4 Mpix at 10 m, 400 km^2) with a season of
scenes (April-September every 5 days, 6 monthly time bins), each in a fresh process:

(a) bare loop: the same plan, reads, composites, model and batch size in one
    process, batch after batch, no Prefect and no Dask;
(b) the ``analyze`` flow (Prefect ephemeral API) on a running LocalCluster of
    one single-threaded worker process per core.

Prints Mpix/s and km^2/min for both, peak RSS (the flow's process and its largest
worker), and the ratio b/a. Target: b/a >= 0.85.

    .venv/bin/python bench/pipeline.py [--size-km 20] [--workdir /tmp/cropai-bench-pipeline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRES_PER_DEGREE = 111_320.0
LAT = 48.2


def aoi_for(size_km: float) -> dict:
    height = size_km * 1000 / METRES_PER_DEGREE
    width = height / 0.6665  # cos(48.2 degrees)
    x0, y0 = 1.5, LAT
    return {
        "type": "Polygon",
        "coordinates": [[[x0, y0], [x0 + width, y0], [x0 + width, y0 + height], [x0, y0 + height], [x0, y0]]],
    }


def prepare(workdir: Path, size_km: float) -> None:
    """Synthesise and ingest the season once; later runs reuse the catalogue and store."""
    if (workdir / "ready").exists():
        return
    shutil.rmtree(workdir, ignore_errors=True)
    os.environ["CROPAI_HOME"] = str(workdir / "home")
    from cropai.db import upgrade_database
    from cropai.ingest import ingest_candidate
    from cropai.services import services
    from cropai.sources import discover
    from cropai.synth import SynthSpec, synthesize
    from models.registry import ensure_default_model

    svc = services()
    upgrade_database(svc.engine)
    ensure_default_model(svc.store, svc.sessions)
    ring = aoi_for(size_km)["coordinates"][0]
    bbox = (ring[0][0] - 0.002, ring[0][1] - 0.002, ring[2][0] + 0.002, ring[2][1] + 0.002)
    made = synthesize(SynthSpec(bbox, date(2025, 4, 1), date(2025, 9, 30), seed=21), workdir / "synthetic")
    for candidate in discover(str(made.root / "scenes"), svc.store):
        ingest_candidate(candidate, svc.store, svc.sessions)
    shutil.rmtree(made.root / "scenes")  # the store holds the COGs now
    (workdir / "ready").write_text("ok")


def run_child(mode: str, workdir: Path, size_km: float) -> dict:
    os.environ.update(
        CROPAI_HOME=str(workdir / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        DASK_LOGGING__DISTRIBUTED="warning",
    )
    from cropai.analysis_records import create_analysis
    from cropai.services import services

    svc = services()
    analysis_id = create_analysis(svc.sessions, aoi_for(size_km), date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0")
    figures: dict = {}
    if mode == "bare":
        import torch

        from cropai.analysis import ModelInputs, plan_from_catalogue
        from cropai.analysis_records import read_request
        from models.infer import create_outputs, run_batch
        from models.predict import load_predictor
        from models.registry import resolve

        torch.set_num_threads(os.cpu_count() or 1)
        model = resolve(svc.sessions, "cropnet@1.0.0")
        plan = plan_from_catalogue(svc.sessions, read_request(svc.sessions, analysis_id), ModelInputs.of_version(model))
        predictor = load_predictor(svc.store, svc.sessions, plan.model)
        create_outputs(plan, svc.store)
        started = time.perf_counter()
        for index in range(len(plan.tiles.batches)):
            run_batch(plan, index, svc.store, predictor)
        figures["seconds"] = time.perf_counter() - started
        figures["pixels"] = plan.grid.width * plan.grid.height
        figures["batches"] = len(plan.tiles.batches)
        figures["worker_rss_mb"] = 0.0
    else:
        from distributed import Client, LocalCluster
        from prefect.client.orchestration import get_client

        from flows.analyze import analyze

        with get_client(sync_client=True) as client:  # starts the ephemeral API before the clock
            api = str(client.api_url).rstrip("/")
        with (
            LocalCluster(
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                dashboard_address=":0",
                env={"PREFECT_API_URL": api},
            ) as cluster,
            Client(cluster) as dask,
        ):
            os.environ["CROPAI_DASK_ADDRESS"] = cluster.scheduler_address
            started = time.perf_counter()
            summary = analyze(str(analysis_id))
            figures["seconds"] = time.perf_counter() - started
            peaks = dask.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            figures["worker_rss_mb"] = max(peaks.values())
        figures["pixels"] = summary.aoi_pixels
        figures["batches"] = summary.batches
    figures["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-km", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cropai-bench-pipeline")
    parser.add_argument("--child", choices=["bare", "flow"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.workdir, args.size_km)))
        return
    started = time.perf_counter()
    prepare(args.workdir, args.size_km)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"data: {args.size_km:g} km x {args.size_km:g} km AOI, a season of scenes every 5 days, 6 monthly bins "
        f"(prepared or reused in {time.perf_counter() - started:.0f} s)"
    )
    results = {}
    for mode in ("bare", "flow"):
        child = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--workdir", str(args.workdir), "--size-km", str(args.size_km)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if child.returncode:
            raise SystemExit(f"{mode} run failed:\n{child.stderr[-4000:]}")
        results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"{'run':<24} {'Mpix/s':>7} {'km2/min':>8} {'seconds':>8} {'batches':>8} {'peak RSS':>17}")
    labels = {"bare": "(a) bare loop, 1 process", "flow": "(b) analyze flow on Dask"}
    for mode, figures in results.items():
        mpix = figures["pixels"] / figures["seconds"] / 1e6
        km2_min = figures["pixels"] * 1e-4 / figures["seconds"] * 60
        workers = f" + {figures['worker_rss_mb']:.0f} MB/worker" if figures["worker_rss_mb"] else ""
        print(
            f"{labels[mode]:<24} {mpix:>7.3f} {km2_min:>8.1f} {figures['seconds']:>8.1f} {figures['batches']:>8} "
            f"{figures['rss_mb']:>6.0f} MB{workers}"
        )
    ratio = results["bare"]["seconds"] / results["flow"]["seconds"]
    print(f"ratio b/a (throughput): {ratio:.2f}   target >= 0.85")


if __name__ == "__main__":
    main()
