"""Analysis throughput: the ``analyze`` flow on Dask against a bare loop, an xarray peer and the fused limit.

On a generated AOI of 20 km x 20 km (4 Mpix at 10 m, 400 km^2) with a season of
scenes (April-September every 5 days, 6 monthly time bins), each in a fresh process:

(a) bare loop: the same plan, reads, composites, model and batch size in one
    process, batch after batch, no Prefect and no Dask;
(b) the ``analyze`` flow (Prefect ephemeral API) on a running LocalCluster of
    one single-threaded worker process per core, whose workers loaded the model before
    the clock starts (as (a) and (d) do, and as a standing cluster's workers have);
(c) the peer: the same analysis as a skilled xarray user would write it, on Dask's
    threaded scheduler (one thread per core): each scene COG opened lazily with
    rioxarray, put on the plan's grid (padded by the model's halo), stacked in time,
    masked with SCL, a bottleneck median per time bin, gaps interpolated in time
    (then the nearest bin, then the band mean), and the same model run with
    ``dask.array.map_overlap`` over (y, x) blocks with the model's halo;
(d) the fused limit: per batch only decode, mask, fast median (``clear_median``)
    and the model, argmax kept and discarded: no Prefect, no Dask, no Zarr writes,
    the batches split over one single-threaded process per core.

Prints Mpix/s and km^2/min for each, peak RSS (the process and its largest
worker), how often the peer's map agrees with the flow's on the AOI's pixels, and
the throughput ratios. Targets: b/a >= 0.85, flow/peer >= 1.2, flow/limit >= 0.6.

    .venv/bin/python bench/pipeline.py [--size-km 20] [--workdir /tmp/cropai-bench-pipeline]

A large AOI with workers of little memory, the flow alone (the default request limit,
2,500 km^2, on workers limited to 2 GB; a scene every 15 days keeps generation short):

    .venv/bin/python bench/pipeline.py --size-km 50 --revisit-days 15 --worker-memory 2GB \
        --runs flow --workdir /tmp/cropai-bench-2500
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affine import Affine

if TYPE_CHECKING:  # each run imports what it needs, in its own process
    import numpy as np
    import xarray as xr

    from cropai.analysis import AnalysisPlan
    from cropai.composite import TimeBin
    from cropai.grid import Grid

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


def prepare(workdir: Path, size_km: float, revisit_days: int = 5) -> None:
    """Synthesise and ingest the season once; later runs reuse the catalogue and store."""
    if (workdir / "ready").exists():
        return
    shutil.rmtree(workdir, ignore_errors=True)
    os.environ["CROPAI_HOME"] = str(workdir / "home")
    from cropai.db import upgrade_database
    from cropai.ingest import ingest_candidate
    from cropai.services import services
    from cropai.sources import discover
    from cropai.synth import MAX_PIXELS, SynthSpec, synthesize
    from models.registry import ensure_default_model

    svc = services()
    upgrade_database(svc.engine)
    ensure_default_model(svc.store, svc.sessions)
    ring = aoi_for(size_km)["coordinates"][0]
    west, south, east, north = ring[0][0] - 0.002, ring[0][1] - 0.002, ring[2][0] + 0.002, ring[2][1] + 0.002
    strips = math.ceil((size_km + 0.5) ** 2 * 1e4 / MAX_PIXELS)  # the generator makes 25 Mpix per set at most
    for strip in range(strips):  # side by side, north to south, like the tiles of a scene grid
        top = north - (north - south) * strip / strips
        bottom = north - (north - south) * (strip + 1) / strips - (0.002 if strip < strips - 1 else 0)
        spec = SynthSpec((west, bottom, east, top), date(2025, 4, 1), date(2025, 9, 30), 21 + strip, revisit_days)
        made = synthesize(spec, workdir / f"synthetic-{strip}")
        for candidate in discover(str(made.root / "scenes"), svc.store):
            ingest_candidate(candidate, svc.store, svc.sessions)
        shutil.rmtree(made.root / "scenes")  # the store holds the COGs now
    (workdir / "ready").write_text("ok")


def run_child(mode: str, workdir: Path, size_km: float, flow_map: str | None = None, worker_memory: str = "") -> dict:
    """One run in this fresh process, on a new analysis of the AOI; its figures as a dict."""
    os.environ.update(
        CROPAI_HOME=str(workdir / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        DASK_LOGGING__DISTRIBUTED="warning",
    )
    from cropai.analysis_records import create_analysis
    from cropai.services import services

    svc = services()
    analysis_id = create_analysis(svc.sessions, aoi_for(size_km), date(2025, 4, 1), date(2025, 9, 30), MODEL)
    if mode == "bare":
        figures = bare_loop(plan_for(analysis_id))
    elif mode == "flow":
        figures = analyze_flow(analysis_id, worker_memory)
    elif mode == "peer":
        figures = xarray_peer(plan_for(analysis_id), flow_map)
    else:
        figures = fused_limit(plan_for(analysis_id))
    figures["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


MODEL = "cropnet@1.0.0"


def plan_for(analysis_id: uuid.UUID, worker_memory: int | None = None) -> AnalysisPlan:
    """The plan the flow would make of the analysis: the runs other than the flow all start from it."""
    from cropai.analysis import ModelInputs, plan_from_catalogue
    from cropai.analysis_records import read_request
    from cropai.services import services
    from models.registry import resolve

    svc = services()
    model = resolve(svc.sessions, MODEL)
    request = read_request(svc.sessions, analysis_id)
    return plan_from_catalogue(svc.sessions, request, ModelInputs.of_version(model), worker_memory)


def bare_loop(plan: AnalysisPlan) -> dict:
    """(a): ``run_batch`` of every batch in turn, in this process, with all its cores."""
    import torch

    from cropai.services import services
    from models.infer import create_outputs, run_batch
    from models.predict import load_predictor

    svc = services()
    torch.set_num_threads(os.cpu_count() or 1)
    predictor = load_predictor(svc.store, svc.sessions, plan.model)
    create_outputs(plan, svc.store)
    started = time.perf_counter()
    for index in range(len(plan.tiles.batches)):
        run_batch(plan, index, svc.store, predictor)
    return {
        "seconds": time.perf_counter() - started,
        "pixels": plan.grid.width * plan.grid.height,
        "batches": len(plan.tiles.batches),
        "worker_rss_mb": 0.0,
    }


def analyze_flow(analysis_id: uuid.UUID, worker_memory: str = "") -> dict:
    """(b): the ``analyze`` flow on a LocalCluster (a LocalCUDACluster when GPUs are visible) that
    runs before the clock starts, each worker limited to ``worker_memory`` when given; with where
    its crop map is, for the peer to be compared with, and what its workers held per Mpix of their
    largest batch."""
    import psutil
    from distributed import Client, LocalCluster
    from prefect.client.orchestration import get_client

    from cropai.cluster import visible_gpus
    from cropai.cropmap import AnalysisSummary
    from flows.analyze import analyze

    with get_client(sync_client=True) as client:  # starts the ephemeral API before the clock
        api = str(client.api_url).rstrip("/")
    options = {"dashboard_address": ":0", "env": {"PREFECT_API_URL": api}, "memory_limit": worker_memory or "auto"}
    if visible_gpus():  # as cropai.cluster would start it: one worker per GPU
        from dask_cuda import LocalCUDACluster

        cluster_class: Any = LocalCUDACluster
    else:
        cluster_class, options = LocalCluster, {**options, "n_workers": os.cpu_count() or 1, "threads_per_worker": 1}
    with cluster_class(**options) as cluster, Client(cluster) as dask:
        os.environ["CROPAI_DASK_ADDRESS"] = cluster.scheduler_address
        dask.run(_load_model)  # as (a) and (d) do before their clocks start: a standing cluster's workers
        bases = dask.run(lambda: psutil.Process().memory_info().rss / 2**20)  # each worker before its batches
        limit = min(w["memory_limit"] for w in dask.scheduler_info()["workers"].values())
        started = time.perf_counter()
        summary = analyze(str(analysis_id))
        seconds = time.perf_counter() - started
        peaks = dask.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        replaced = len(set(peaks) - set(bases))  # workers the nanny restarted (past their memory limit)
    if not isinstance(summary, AnalysisSummary):  # the flow ended Cancelled or Failed
        raise SystemExit(f"the analyze flow did not finish: {summary}")
    largest = max(b.pixels for b in plan_for(analysis_id, limit).tiles.batches)  # the plan the flow made
    worst = max(peaks, key=peaks.__getitem__)
    return {
        "seconds": seconds,
        "pixels": summary.aoi_pixels,
        "batches": summary.batches,
        "worker_rss_mb": peaks[worst],
        "worker_base_mb": bases.get(worst, max(bases.values())),
        "batch_mpix": largest / 1e6,
        "worker_limit_mb": limit / 2**20,
        "workers_replaced": replaced,
        "analysis_id": str(analysis_id),
        "map": summary.map,
    }


def _load_model() -> None:
    """On a worker: import what a batch task runs and load the model."""
    import models.infer  # noqa: F401
    from cropai.services import services
    from models.predict import load_predictor

    svc = services()
    load_predictor(svc.store, svc.sessions, MODEL)


# The peer, (c) ------------------------------------------------------------------------------

PEER_CHUNK_PX = 512  # (y, x) chunks of the peer's arrays, and so the model's blocks (halo aside)


def xarray_peer(plan: AnalysisPlan, flow_map: str | None) -> dict:
    """(c): the peer's class map, and how often it agrees with the flow's map on the AOI's pixels.

    It runs on Dask's threaded scheduler, one thread per core (and one torch thread per Dask
    thread), the default a skilled user gets from ``.compute()``: GDAL, bottleneck and torch
    release the GIL. On a LocalCluster of single-threaded worker processes like the flow's,
    the same graph took 85 s instead of 31 s on the 20 km AOI (2 cores), most of the
    difference in moving scene chunks between the workers."""
    import dask
    import torch

    from cropai.analysis import aoi_mask

    threads = os.cpu_count() or 1
    torch.set_num_threads(1)
    with dask.config.set(scheduler="threads", num_workers=threads):
        started = time.perf_counter()
        labels = peer_class_map(plan).to_numpy()
        inside = aoi_mask(plan.request.aoi_geojson, plan.grid)
        labels[~inside] = 0
        seconds = time.perf_counter() - started
    figures = {
        "seconds": seconds,
        "pixels": plan.grid.width * plan.grid.height,
        "batches": "-",
        "worker_rss_mb": 0.0,
        "aoi_pixels": int(inside.sum()),
    }
    if flow_map:
        import rasterio

        with rasterio.open(flow_map) as source:
            theirs = source.read(1)
        figures["agreement"] = float((theirs[inside] == labels[inside]).mean())
    return figures


def peer_class_map(plan: AnalysisPlan) -> xr.DataArray:
    """The (y, x) class ids of the plan's grid, lazily: 0 where no time bin saw a pixel clear."""
    from cropai import sentinel2

    halo = plan.tiles.halo  # the contract's overlap
    stack = scene_stack(plan, halo)
    clear = ~stack.sel(band=sentinel2.SCL_BAND).isin(sorted(sentinel2.UNUSABLE_SCL))
    reflectance = stack.drop_sel(band=sentinel2.SCL_BAND).where(clear) / sentinel2.REFLECTANCE_SCALE
    cube = fill_gaps(bin_medians(reflectance, plan.time_bins), plan.band_means)
    labels = predict_blocks(cube, halo).where(clear.any("time"), 0).astype("uint8")
    return labels.isel(y=slice(halo, -halo), x=slice(halo, -halo))


def scene_stack(plan: AnalysisPlan, halo: int) -> xr.DataArray:
    """(time, band, y, x) uint16 of every scene of the plan on its grid padded by ``halo`` px on each
    side, so that the blocks at the map's edges see what the flow's edge tiles see. Lazy where a
    scene's pixels line up with the grid (the usual case within an MGRS tile): ``reindex`` reads only
    the blocks it needs; any other scene is warped by ``reproject_match``, which reads it whole."""
    import numpy as np
    import rioxarray
    import xarray as xr

    from cropai.services import services

    store, grid = services().store, plan.grid
    step = grid.resolution_m
    x = grid.origin_x_m + step * (np.arange(-halo, grid.width + halo) + 0.5)
    y = grid.origin_y_m - step * (np.arange(-halo, grid.height + halo) + 0.5)
    template = xr.DataArray(np.zeros((len(y), len(x)), np.uint16), coords={"y": y, "x": x}, dims=("y", "x"))
    template = template.rio.write_crs(grid.crs).rio.write_transform(grid.transform * Affine.translation(-halo, -halo))
    scenes = []
    with store.gdal_env():
        for ref in plan.scenes:
            scene = rioxarray.open_rasterio(
                store.gdal_path(ref.object_key), chunks={"band": -1, "y": PEER_CHUNK_PX, "x": PEER_CHUNK_PX}, lock=False
            )
            assert isinstance(scene, xr.DataArray)  # a single-resolution GeoTIFF opens as one array
            scene = scene.assign_coords(band=list(scene.attrs["long_name"]))
            if _aligned(scene, grid):
                scene = scene.reindex(y=y, x=x, method="nearest", tolerance=step / 4, fill_value=0)
            else:
                scene = scene.rio.reproject_match(template, nodata=0).assign_coords(y=y, x=x)
            scenes.append(scene.drop_vars("spatial_ref").expand_dims(time=[np.datetime64(ref.acquired_at, "ns")]))
    stack = xr.concat(scenes, "time").chunk({"time": 1, "y": PEER_CHUNK_PX, "x": PEER_CHUNK_PX})
    return stack.rio.write_crs(grid.crs)


def _aligned(scene: xr.DataArray, grid: Grid) -> bool:
    """Whether a scene's pixels are the grid's: same CRS, same north-up pixel size, and a
    whole number of pixels between the two origins."""
    from rasterio.crs import CRS

    transform, step = scene.rio.transform(), grid.resolution_m
    return (
        scene.rio.crs == CRS.from_user_input(grid.crs)
        and (transform.a, transform.b, transform.d, transform.e) == (step, 0.0, 0.0, -step)
        and (transform.c - grid.origin_x_m) % step == 0
        and (transform.f - grid.origin_y_m) % step == 0
    )


def bin_medians(reflectance: xr.DataArray, bins: Sequence[TimeBin]) -> xr.DataArray:
    """(time, band, y, x) the median of the clear reflectances of each time bin, NaN where a bin
    never saw a pixel clear. ``bottleneck.nanmedian`` through ``apply_ufunc``: on dask arrays
    ``DataArray.median`` would use ``np.nanmedian``, several times slower."""
    import bottleneck  # type: ignore[import-untyped]
    import numpy as np
    import xarray as xr

    medians = []
    for time_bin in bins:
        scenes = reflectance.sel(time=slice(str(time_bin.start), str(time_bin.end))).chunk(time=-1)
        medians.append(
            xr.apply_ufunc(
                bottleneck.nanmedian,
                scenes,
                input_core_dims=[["time"]],
                kwargs={"axis": -1},
                dask="parallelized",
                output_dtypes=[np.float32],
            )
        )
    starts = [np.datetime64(time_bin.start, "ns") for time_bin in bins]
    return xr.concat(medians, "time").assign_coords(time=starts).transpose("time", "band", "y", "x")


def fill_gaps(composite: xr.DataArray, band_means: Sequence[float]) -> xr.DataArray:
    """``cropai.composite.fill_gaps`` in xarray: linear in time between the nearest clear bins
    (by bin index, as the model's contract says), the nearest bin at the season's ends, the
    band's mean where a pixel was never seen clear.

    The interpolation is written with ``ffill``/``bfill`` of the values and of their bin index,
    not with ``interpolate_na``: that one calls ``np.interp`` once per pixel and band (through
    ``np.vectorize``), which took 85 % of the peer's time on the 4 km AOI."""
    import numpy as np
    import xarray as xr

    series = composite.chunk(time=-1)
    steps = xr.DataArray(np.arange(series.sizes["time"], dtype=np.float32), dims="time")
    seen_at = steps.where(series.notnull())
    before, after = series.ffill("time"), series.bfill("time")
    weight = (steps - seen_at.ffill("time")) / (seen_at.bfill("time") - seen_at.ffill("time"))
    between = before + weight * (after - before)
    means = xr.DataArray(list(band_means), coords={"band": composite.band}, dims="band").astype("float32")
    return series.fillna(between).fillna(before).fillna(after).fillna(means)


def predict_blocks(cube: xr.DataArray, halo: int) -> xr.DataArray:
    """(y, x) class ids of the model on a (time, band, y, x) cube, with ``map_overlap`` over its
    (y, x) chunks: each block is predicted with ``halo`` px of its neighbours, then cut back.
    The cube's outer ``halo`` px are context only: no block is padded beyond them."""
    import dask.array as da
    import numpy as np
    import xarray as xr

    data = cube.data.rechunk({0: -1, 1: -1})
    labels = da.map_overlap(
        _predict_block,
        data,
        depth={0: 0, 1: 0, 2: halo, 3: halo},
        boundary="none",
        drop_axis=[0, 1],
        dtype=np.uint8,
        meta=np.empty((0, 0), np.uint8),
    )
    return xr.DataArray(labels, coords={"y": cube.y, "x": cube.x}, dims=("y", "x"))


def _predict_block(block: np.ndarray) -> np.ndarray:
    """(time, band, y, x) -> (y, x) class ids; the model is loaded once per process."""
    import numpy as np

    from cropai.services import services
    from models.predict import load_predictor

    svc = services()
    predictor = load_predictor(svc.store, svc.sessions, MODEL)
    class_ids = np.asarray(predictor.contract.class_ids, dtype=np.uint8)
    probabilities = predictor.predict(block[None])[0]
    return class_ids[probabilities.argmax(axis=0)]


# The fused limit, (d) -----------------------------------------------------------------------


def fused_limit(plan: AnalysisPlan) -> dict:
    """(d): the batches dealt out to one single-threaded process per core. The wall time is from
    the first process' first batch to the last one's end: as in (a), loading the model is not
    timed. Each keeps only the argmax of its tiles, and drops it."""
    from multiprocessing import get_context

    workers = os.cpu_count() or 1
    indexes = list(range(len(plan.tiles.batches)))
    with get_context("spawn").Pool(workers) as pool:
        spans = pool.starmap(_predict_batches, [(plan, indexes[worker::workers]) for worker in range(workers)])
    return {
        "seconds": max(end for _, end, _ in spans) - min(start for start, _, _ in spans),
        "pixels": plan.grid.width * plan.grid.height,
        "batches": len(indexes),
        "worker_rss_mb": max(rss for _, _, rss in spans),
    }


def _predict_batches(plan: AnalysisPlan, indexes: list[int]) -> tuple[float, float, float]:
    """In a pool process: composite and predict the batches; (start, end) wall-clock seconds of
    the loop and this process' peak RSS in MB."""
    import numpy as np
    import torch

    from cropai.analysis import batch_input
    from cropai.services import services
    from models.predict import load_predictor

    torch.set_num_threads(1)
    svc = services()
    predictor = load_predictor(svc.store, svc.sessions, plan.model)
    started = time.time()
    for index in indexes:
        batch = plan.tiles.batches[index]
        made = batch_input(plan, batch, svc.store)
        if made is not None:
            predictor.predict(np.stack([made.tile(tile) for tile in batch.tiles])).argmax(axis=1)
    return started, time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The report ---------------------------------------------------------------------------------

LABELS = {
    "bare": "(a) bare loop, 1 process",
    "flow": "(b) analyze flow on Dask",
    "peer": "(c) xarray peer, threads",
    "limit": "(d) fused limit, N procs",
}


def run_in_child(mode: str, args: argparse.Namespace, *extra: str) -> dict:
    """Run ``mode`` in a fresh Python process; its figures."""
    where = ["--workdir", str(args.workdir), "--size-km", str(args.size_km), "--worker-memory", args.worker_memory]
    child = subprocess.run(
        [sys.executable, __file__, "--child", mode, *where, *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if child.returncode:
        raise SystemExit(f"{mode} run failed:\n{child.stderr[-4000:]}")
    figures: dict = json.loads(child.stdout.strip().splitlines()[-1])
    return figures


def print_report(results: dict[str, dict]) -> None:
    print(f"{'run':<24} {'Mpix/s':>7} {'km2/min':>8} {'seconds':>8} {'batches':>8} {'peak RSS':>17}")
    for mode, figures in results.items():
        mpix = figures["pixels"] / figures["seconds"] / 1e6
        km2_min = figures["pixels"] * 1e-4 / figures["seconds"] * 60
        workers = f" + {figures['worker_rss_mb']:.0f} MB/worker" if figures["worker_rss_mb"] else ""
        label = LABELS[mode].replace("N procs", f"{os.cpu_count()} procs")
        print(
            f"{label:<24} {mpix:>7.3f} {km2_min:>8.1f} {figures['seconds']:>8.1f} {figures['batches']:>8} "
            f"{figures['rss_mb']:>6.0f} MB{workers}"
        )
    flow = results.get("flow")
    if flow:
        peak, base, mpix = flow["worker_rss_mb"], flow["worker_base_mb"], flow["batch_mpix"]
        print(
            f"flow workers: limit {flow['worker_limit_mb']:,.0f} MB, peak {peak:,.0f} MB of which {base:,.0f} MB "
            f"before the first batch; largest batch {mpix:.2f} Mpix: {(peak - base) / 1024 / mpix:.2f} GB per Mpix "
            f"held for it (target <= 0.6), {peak / 1024 / mpix:.2f} GB per Mpix with the worker; "
            f"workers restarted: {flow['workers_replaced']}"
        )
    peer = results.get("peer")
    if peer and "agreement" in peer:
        print(
            f"agreement of the peer's map with the flow's: {peer['agreement']:.2%} of {peer['aoi_pixels']:,} AOI pixels"
        )
    if not flow:
        return
    flow_seconds = flow["seconds"]  # the same AOI in every run: throughput ratios are time ratios
    targets = {"bare": ("ratio b/a", 0.85), "peer": ("flow/peer", 1.2), "limit": ("flow/limit", 0.6)}
    for mode, (name, target) in targets.items():
        if mode in results:
            print(f"{name} (throughput): {results[mode]['seconds'] / flow_seconds:.2f}   target >= {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-km", type=float, default=20.0)
    parser.add_argument("--revisit-days", type=int, default=5, help="days between generated scenes")
    parser.add_argument("--worker-memory", default="", help="the flow's workers' memory limit, e.g. 2GB")
    parser.add_argument("--runs", default=",".join(LABELS), help="which of bare,flow,peer,limit to run")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cropai-bench-pipeline")
    parser.add_argument("--child", choices=list(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--flow-map", help=argparse.SUPPRESS)  # the peer's map is compared with this one
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.workdir, args.size_km, args.flow_map, args.worker_memory)))
        return
    runs = [run for run in args.runs.split(",") if run]
    if unknown := set(runs) - set(LABELS):
        parser.error(f"unknown runs {sorted(unknown)}: expected some of {','.join(LABELS)}")
    started = time.perf_counter()
    prepare(args.workdir, args.size_km, args.revisit_days)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"data: {args.size_km:g} km x {args.size_km:g} km AOI, a season of scenes every {args.revisit_days} days, "
        f"6 monthly bins (prepared or reused in {time.perf_counter() - started:.0f} s)"
    )
    results = {}
    for run in ("bare", "flow", "peer", "limit"):
        if run in runs:
            flow_map = ["--flow-map", results["flow"]["map"]] if run == "peer" and "flow" in results else []
            results[run] = run_in_child(run, args, *flow_map)
    print_report(results)


if __name__ == "__main__":
    main()
