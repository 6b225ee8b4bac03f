"""The per-bin median of clear observations: the plain formula against ``clear_median``.

One time bin of a batch: ``--views`` observations of 10 bands over ``--side`` x ``--side``
pixels (uint16 reflectance x 10000), ``--clear`` of them clear at random. Prints seconds and
Mpix/s for

(a) the plain formula: float32 reflectance copies, NaN where unclear, ``np.nanmedian``;
(b) ``cropai.composite.clear_median``: a uint16 sorting network, two middle values made float32;
(c) ``models.gpu_composite.device_clear_median`` on torch's CPU device, and on CUDA when a GPU
    is visible (what CUDA workers run; the copy to the device and back included);

whether each equals (a) bit for bit, and the speed-up b/a.

    .venv/bin/python bench/composite.py [--side 1024] [--views 7] [--clear 0.6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from cropai.composite import clear_median

BANDS = 10


def plain_median(numbers: np.ndarray, clear: np.ndarray) -> np.ndarray:
    reflectance = numbers.astype(np.float32) / 10_000
    reflectance[np.broadcast_to(~clear[:, None], reflectance.shape)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(reflectance, axis=0)


def best_of(repeats: int, run) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--views", type=int, default=7)
    parser.add_argument("--clear", type=float, default=0.6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    numbers = rng.integers(0, 12_000, size=(args.views, BANDS, args.side, args.side), dtype=np.uint16)
    clear = rng.uniform(size=(args.views, args.side, args.side)) < args.clear
    mpix = args.side * args.side / 1e6
    plain_s, expected = best_of(args.repeats, lambda: plain_median(numbers, clear))
    fast_s, made = best_of(args.repeats, lambda: clear_median(numbers.copy(), clear))
    print(f"one bin: {args.views} views x {BANDS} bands x {mpix:.2f} Mpix, {args.clear:.0%} clear")
    print("| median | s | Mpix/s |\n| --- | --- | --- |")
    print(f"| plain (float32 copies, np.nanmedian) | {plain_s:.3f} | {mpix / plain_s:.2f} |")
    print(f"| clear_median (uint16 sorting network) | {fast_s:.3f} | {mpix / fast_s:.2f} |")
    same = {"clear_median": np.array_equal(made, expected, equal_nan=True)}
    import torch

    from models.gpu_composite import device_clear_median

    for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
        median = device_clear_median(device)
        median(numbers[:, :, :64, :64].copy(), clear[:, :64, :64])  # warm the device up
        device_s, on_device = best_of(args.repeats, lambda median=median: median(numbers.copy(), clear))
        print(f"| torch on {device} | {device_s:.3f} | {mpix / device_s:.2f} |")
        same[f"torch on {device}"] = np.array_equal(on_device, expected, equal_nan=True)
    print(f"bit-identical to (a): {same}; speed-up b/a {plain_s / fast_s:.1f} x")


if __name__ == "__main__":
    main()
