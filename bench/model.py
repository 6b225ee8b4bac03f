"""Predictor throughput of the default model at its tile size, and of the pretrained-encoder family.

Prints Mpix/s and tiles/s on the CPU with the thread count and batch size used,
and the model's held-out metrics; on a GPU (when one is present) the same in
float32 and under bfloat16 autocast. Target on the CPU: >= 0.5 Mpix/s on 2 threads
with held-out macro F1 >= 0.85. The ``presto`` rows run the published Presto encoder
(per pixel: a transformer over each pixel's season) with a linear head on the default
contract's six monthly bins, through the same Predictor.

    .venv/bin/python bench/model.py [--threads 2] [--batch 4] [--seconds 10] [--presto-tile 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch


def default_model():
    from models.architectures import build
    from models.contract import ModelContract
    from models.registry import DEFAULT_MODEL_DIR as DEFAULT_MODEL
    from models.registry import WEIGHTS_FILE, LoadedModel

    metadata = json.loads((DEFAULT_MODEL / "metadata.json").read_text())
    contract = ModelContract(**metadata["contract"])
    model = build(
        contract.architecture,
        len(contract.bands),
        contract.time_bins_count,
        len(contract.classes),
        **contract.architecture_params,
    )
    model.load_state_dict(torch.load(DEFAULT_MODEL / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return LoadedModel(
        model.eval(), contract, metadata["name"], metadata["version"], metadata["checksum_sha256"]
    ), metadata


def presto_model(loaded):
    """The pretrained-encoder family on the default model's contract (six monthly bins from April)."""
    from models.presto import PrestoClassifier
    from models.registry import LoadedModel

    params = {
        "start_month": 4,
        "latitude": 48.2,
        "longitude": 1.6,
        "band_means": loaded.contract.band_means,
        "band_stds": loaded.contract.band_stds,
    }
    contract = loaded.contract.model_copy(update={"architecture": "presto", "architecture_params": params})
    model = PrestoClassifier(len(contract.bands), contract.time_bins_count, len(contract.classes), **params)
    return LoadedModel(model.eval(), contract, "presto", "bench", "-")


def measure(predictor, batch: int, seconds: float, tile: int | None = None) -> tuple[float, float]:
    tile = tile or predictor.contract.tile_size
    cubes = (
        np.random.default_rng(0)
        .uniform(0.0, 0.5, (batch, predictor.contract.time_bins_count, len(predictor.contract.bands), tile, tile))
        .astype(np.float32)
    )
    predictor.predict(cubes)  # warm-up
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.predict(cubes)
        runs += 1
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    tiles = runs * batch / elapsed
    return tiles * tile * tile / 1e6, tiles


def main() -> None:
    from models.predict import Predictor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--presto-tile", type=int, default=64, help="tile side (px) of the presto rows")
    args = parser.parse_args()
    loaded, metadata = default_model()
    metrics = metadata["metrics"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(
        f"model: {loaded.name}@{loaded.version}, tile {loaded.contract.tile_size} px, "
        f"held-out overall accuracy {metrics['overall_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
        "(synthetic scenes)"
    )

    torch.set_num_threads(args.threads)
    cpu = Predictor(loaded, device="cpu", max_batch=args.batch)
    mpix, tiles = measure(cpu, args.batch, args.seconds)
    print(f"cpu   float32   threads {args.threads}  batch {args.batch}: {mpix:6.2f} Mpix/s  {tiles:7.1f} tiles/s")
    print("target (cpu, 2 threads): >= 0.5 Mpix/s with macro F1 >= 0.85")
    presto = Predictor(presto_model(loaded), device="cpu", max_batch=1)
    mpix, tiles = measure(presto, 1, args.seconds, args.presto_tile)
    print(
        f"cpu   float32   threads {args.threads}  presto, {args.presto_tile} px tiles: {mpix:8.4f} Mpix/s "
        f"({mpix * 1e6:,.0f} px/s)"
    )

    if torch.cuda.is_available():
        print(f"gpu: {torch.cuda.get_device_name()}")
        for label, autocast in (("float32 ", None), ("bfloat16", torch.bfloat16)):
            gpu = Predictor(loaded, device="cuda")
            gpu.autocast_dtype = autocast
            for batch in (16, 64):
                gpu.max_batch = batch
                mpix, tiles = measure(gpu, batch, args.seconds)
                print(f"cuda  {label}  batch {batch:3d}: {mpix:8.2f} Mpix/s  {tiles:8.1f} tiles/s")
            presto_gpu = Predictor(presto_model(loaded), device="cuda", max_batch=4)
            presto_gpu.autocast_dtype = autocast
            mpix, _ = measure(presto_gpu, 4, args.seconds, 256)
            print(f"cuda  {label}  presto, 256 px tiles: {mpix:8.3f} Mpix/s")


if __name__ == "__main__":
    main()
