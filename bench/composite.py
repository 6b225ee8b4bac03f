"""The per-bin median of clear observations: the plain formula against ``clear_median``.

One time bin of a batch: ``--views`` observations of 10 bands over ``--side`` x ``--side``
pixels (uint16 reflectance x 10000), ``--clear`` of them clear at random. Prints seconds and
Mpix/s for

(a) the plain formula: float32 reflectance copies, NaN where unclear, ``np.nanmedian``;
(b) ``cropai.composite.clear_median``: a uint16 sort, two middle values made float32;

whether the two are equal bit for bit, and the speed-up b/a.

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
    print(f"| clear_median (uint16 sort) | {fast_s:.3f} | {mpix / fast_s:.2f} |")
    print(f"bit-identical: {np.array_equal(made, expected, equal_nan=True)}; speed-up {plain_s / fast_s:.1f} x")


if __name__ == "__main__":
    main()
