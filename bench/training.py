"""Training with few labels under a domain shift, and on the real Flanders season.

(1) Generated: a training season in area A (Beauce, 2024) and a test season in area B
    (about 30 km away, 2025, every crop sown ``--shift-days`` later), both synthesised,
    ingested into a catalogue (SQLite and a local folder store under ``--workdir``) and read
    back as labelled seasons (April-September, monthly bins). For each label budget of N
    fields per class, at most N fields of each class of A keep their labels (a seeded
    choice); cropnet and presto are trained on them with ``train_model`` (its by-field split
    holds out about 20 % of them in A), the baseline (logistic regression on the composites)
    is fitted on the same training fields, and all three map B: macro F1 and overall accuracy
    on B's labelled pixels (a uniform sample of ``--test-pixels``: presto reads pixel by
    pixel), beside the held-out figures in A.
(2) Real: the 2019 Flanders season (``../shared/realdata/worldcereal-flanders-2019``, 35
    scenes of 64 x 64 px, declared parcels with a legend, rare classes merged into "other"),
    cropnet and presto trained per seed with ``train_model``'s own by-field held-out split:
    held-out overall accuracy and macro F1 of each and of the baseline, and their mean.

Prints Markdown tables (for docs/benchmarks.md) with the machine, the wall time of each
training and the command line. Not part of the test suite. The generated seasons are
made once and reused from ``--workdir``.

    .venv/bin/python bench/training.py [--budgets 10,30,100] [--seeds 0,1,2] [--shift-days 21]
        [--test-pixels 30000] [--epochs N] [--steps N] [--families cropnet,presto]
        [--skip-generated] [--skip-real] [--workdir /tmp/cropai-bench-training]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # testkit lives beside cropai

from cropai.config import Settings  # noqa: E402
from cropai.crops import SYNTHETIC_LEGEND  # noqa: E402
from cropai.db import upgrade_database  # noqa: E402
from cropai.ingest import ingest_candidate  # noqa: E402
from cropai.legend import Legend  # noqa: E402
from cropai.parcels import ClassifiedParcels, classify_parcels, read_parcels  # noqa: E402
from cropai.season import Season  # noqa: E402
from cropai.services import Services, services  # noqa: E402
from cropai.sources import discover  # noqa: E402
from cropai.synth import SynthSpec, synthesize  # noqa: E402
from cropai.training_season import labelled_season  # noqa: E402
from models.evaluation import Evaluation  # noqa: E402
from models.splits import field_classes  # noqa: E402
from models.train import TrainConfig, fit_baseline, split_training, train_model, transfer_metrics  # noqa: E402
from models.training_data import TrainingData  # noqa: E402
from testkit.labelled_parcels import FLANDERS, FLANDERS_SEASON, write_declared_parcels, write_legend  # noqa: E402
from testkit.realdata import realdata_root  # noqa: E402

METRES_PER_DEGREE = 111_320.0
THREADS = 2
# Area A in the Beauce and area B about 30 km to the north-east: another landscape, same region.
AREA_A = (1.55, 48.15)  # south-west corner, lon/lat
AREA_B = (1.85, 48.35)
SIZE_A_KM, SIZE_B_KM = 5.0, 4.0
PARCEL_SIZE_M = 150.0  # small fields: about 100 or more per crop in A's 25 km^2
TRAINING_YEAR, TEST_YEAR = 2024, 2025
REVISIT_DAYS = 10
# The real season is a 68 x 68 px area: small patches and batches, few steps.
REAL_CONFIG = {"epochs": 30, "steps_per_epoch": 20, "batch_size": 8, "patch_px": 32}
GENERATED_CONFIG = {"epochs": 15, "steps_per_epoch": 15, "batch_size": 8, "patch_px": 64}


def box(corner: tuple[float, float], size_km: float) -> tuple[float, float, float, float]:
    """A lon/lat box of ``size_km`` on a side from its south-west corner."""
    height = size_km * 1000 / METRES_PER_DEGREE
    width = height / float(np.cos(np.radians(corner[1])))
    return corner[0], corner[1], corner[0] + width, corner[1] + height


def catalogue(home: Path) -> Services:
    svc = services(Settings(home=home, _env_file=None))
    upgrade_database(svc.engine)
    return svc


def ingest(folder: Path, svc: Services) -> None:
    """Ingest every scene of ``folder``; a scene the catalogue refuses stops the bench, saying why."""
    outcomes = [ingest_candidate(c, svc.store, svc.sessions) for c in discover(str(folder), svc.store)]
    refused = [f"{o.source_uri}: {o.status} ({o.reason})" for o in outcomes if o.status != "ingested"]
    if refused:
        raise SystemExit("scenes not ingested:\n" + "\n".join(refused))


def season_data(svc: Services, parcels: ClassifiedParcels, start: date, end: date) -> TrainingData:
    """The parcels' labelled season in monthly bins from ``start`` to ``end``, read from the catalogue."""
    season = Season.spanning(start, end)
    labelled = labelled_season(svc.sessions, svc.store, parcels, season, (start, end))
    return TrainingData.of_season(labelled, season)


def generated_season(workdir: Path, name: str, spec: SynthSpec) -> TrainingData:
    """Synthesise and ingest ``spec`` once (later runs reuse the catalogue), then read its season."""
    folder = workdir / name
    if not (folder / "ready").exists():
        shutil.rmtree(folder, ignore_errors=True)
        made = synthesize(spec, folder / "synthetic")
        ingest(made.root / "scenes", catalogue(folder / "home"))
        shutil.rmtree(made.root / "scenes")  # the store holds the COGs now
        (folder / "ready").write_text("ok")
    parcels = classify_parcels(read_parcels(folder / "synthetic" / "parcels.geojson", "class_name"), SYNTHETIC_LEGEND)
    return season_data(catalogue(folder / "home"), parcels, spec.start, spec.end)


def fields_per_class(data: TrainingData, legend: Legend) -> dict[str, int]:
    """Labelled fields of each class of ``legend`` (0 for a class without any)."""
    counts = Counter(field_classes(data.labels, data.fields, data.labels > 0).values())
    return {c.name: counts.get(c.id, 0) for c in legend.classes}


def with_budget(data: TrainingData, per_class: int, seed: int) -> TrainingData:
    """A copy of ``data`` in which at most ``per_class`` fields of each class, chosen at random,
    keep their labels."""
    classes = field_classes(data.labels, data.fields, data.labels > 0)
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for class_id in sorted(set(classes.values())):
        members = sorted(f for f, c in classes.items() if c == class_id)
        kept.extend(rng.choice(members, min(per_class, len(members)), replace=False).tolist())
    labels = np.where(np.isin(data.fields, kept), data.labels, 0)
    return dataclasses.replace(data, labels=labels)


def sampled(data: TrainingData, pixels: int, seed: int) -> TrainingData:
    """A copy of ``data`` in which only ``pixels`` labelled pixels drawn uniformly at random keep
    their labels (all of them when ``pixels`` is 0 or more than there are): an unbiased estimate of
    the pixel-wise scores at a fraction of the per-pixel models' cost. The cube is untouched, so a
    spatial model still sees every neighbour."""
    rows, cols = np.nonzero(data.labels > 0)
    if pixels <= 0 or pixels >= len(rows):
        return data
    chosen = np.random.default_rng(seed).choice(len(rows), pixels, replace=False)
    labels = np.zeros_like(data.labels)
    labels[rows[chosen], cols[chosen]] = data.labels[rows[chosen], cols[chosen]]
    return dataclasses.replace(data, labels=labels)


def train_and_transfer(data: TrainingData, test: TrainingData, config: TrainConfig) -> dict:
    """Train ``config.family`` on ``data``, fit the baseline on the same training fields, and
    evaluate both on every labelled pixel of ``test`` (and in ``data``'s held-out fields)."""
    started = time.perf_counter()
    result = train_model(data, config, SYNTHETIC_LEGEND)
    seconds = time.perf_counter() - started
    split = split_training(data, config)
    baseline = fit_baseline(data, result.contract, split.fitting | split.stopping, config.seed)
    started = time.perf_counter()
    on_test, baseline_on_test = transfer_metrics(result.model, result.contract, baseline, test)
    return {
        "seconds": seconds,
        "mapping_seconds": time.perf_counter() - started,
        "epoch": result.metrics["best_epoch"],
        "held_out": result.metrics,
        "baseline_held_out": result.metrics["baseline"],
        "test": on_test,
        "baseline_test": baseline_on_test,
    }


def shifted_specs(shift_days: float, seed: int) -> tuple[SynthSpec, SynthSpec]:
    """Area A's training season and area B's test season, a year later with every crop sown later."""
    training = SynthSpec(
        box(AREA_A, SIZE_A_KM),
        date(TRAINING_YEAR, 4, 1),
        date(TRAINING_YEAR, 9, 30),
        seed=seed,
        revisit_days=REVISIT_DAYS,
        parcel_size_m=PARCEL_SIZE_M,
    )
    test = dataclasses.replace(
        training,
        bbox_wgs84=box(AREA_B, SIZE_B_KM),
        start=date(TEST_YEAR, 4, 1),
        end=date(TEST_YEAR, 9, 30),
        seed=seed + 1,
        phenology_shift_days=shift_days,
    )
    return training, test


def run_generated(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    training_spec, test_spec = shifted_specs(args.shift_days, seed=7)
    shift_tag = f"shift{args.shift_days:g}"
    training = generated_season(args.workdir, "area-a", training_spec)
    whole_test = generated_season(args.workdir, f"area-b-{shift_tag}", test_spec)
    test = sampled(whole_test, args.test_pixels, seed=0)
    available = fields_per_class(training, SYNTHETIC_LEGEND)
    in_test = fields_per_class(whole_test, SYNTHETIC_LEGEND)
    print(f"\n## Generated domain shift (prepared or reused in {time.perf_counter() - started:.0f} s)\n")
    print(
        f"Training season: area A {SIZE_A_KM:g} km x {SIZE_A_KM:g} km from {AREA_A}, {TRAINING_YEAR}-04 to -09, "
        f"{training.cube.shape[3]} x {training.cube.shape[2]} px. Test season: area B {SIZE_B_KM:g} km x "
        f"{SIZE_B_KM:g} km from {AREA_B}, {TEST_YEAR}-04 to -09, every crop sown {args.shift_days:g} days later, "
        f"{test.cube.shape[3]} x {test.cube.shape[2]} px. Parcels about {PARCEL_SIZE_M:g} m, a scene every "
        f"{REVISIT_DAYS} days, 6 monthly bins. B's scores are on {int((test.labels > 0).sum())} of its "
        f"{int((whole_test.labels > 0).sum())} labelled pixels, drawn uniformly at random (--test-pixels)."
    )
    print("\nFields per class (A / B): " + ", ".join(f"{n} {available[n]}/{in_test[n]}" for n in available))
    seed = args.seeds[0]
    settings = {**GENERATED_CONFIG, **overrides(args)}
    print(f"\nTraining: seed {seed}, {describe(settings)}; the budget's fields are chosen with the same seed.\n")
    print("| fields/class (used) | family | A held-out OA | A held-out F1 | B OA | B F1 | epoch | train s | map B s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for budget in args.budgets:
        data = with_budget(training, budget, seed)
        used = fields_per_class(data, SYNTHETIC_LEGEND)
        label = f"{budget} ({min(used.values())}-{max(used.values())})"
        baseline: dict | None = None
        for family in args.families:
            figures = train_and_transfer(data, test, TrainConfig(seed=seed, family=family, **settings))
            print(row(label, family, figures))
            baseline = baseline or {"held_out": figures["baseline_held_out"], "test": figures["baseline_test"]}
        if baseline:
            print(row(label, "baseline", baseline))
    print(
        "\nOA: overall accuracy; F1: macro F1 over the classes present in the truth. 'used': the fewest and "
        "most labelled fields a class kept, of which train_model holds out about 20 % (the A held-out "
        "figures) and trains on the rest; the baseline is fitted on the same training fields. 'map B s': "
        "mapping B with the model and the baseline."
    )


def overrides(args: argparse.Namespace) -> dict[str, int]:
    given = {"epochs": args.epochs, "steps_per_epoch": args.steps}
    return {k: v for k, v in given.items() if v is not None}


def describe(settings: dict[str, int]) -> str:
    return (
        f"at most {settings['epochs']} epochs of {settings['steps_per_epoch']} steps, batch "
        f"{settings['batch_size']}, patch {settings['patch_px']} px"
    )


def row(label: str, family: str, figures: dict) -> str:
    """A Markdown table row; the baseline has no epoch or timings of its own."""
    cells = [label, family]
    for evaluation in (figures["held_out"], figures["test"]):
        cells += [f"{evaluation['overall_accuracy']:.3f}", f"{evaluation['macro_f1']:.3f}"]
    cells.append(str(figures.get("epoch", "")))
    cells += [f"{figures[k]:.0f}" if k in figures else "" for k in ("seconds", "mapping_seconds")]
    return "| " + " | ".join(cells) + " |"


def flanders_season(workdir: Path, folder: Path) -> tuple[TrainingData, ClassifiedParcels]:
    svc = catalogue(workdir / "flanders" / "home")
    if not (workdir / "flanders" / "ready").exists():
        ingest(folder / "scenes", svc)
        (workdir / "flanders" / "ready").write_text("ok")
    gpkg = write_declared_parcels(folder / "parcels.geojson", workdir / "flanders" / "declarations.gpkg")
    legend = Legend.from_csv(write_legend(workdir / "flanders" / "legend.csv"))
    parcels = classify_parcels(read_parcels(gpkg, "crop_code"), legend, min_fields=2, merge_rare=True)
    start, end = (date.fromisoformat(d) for d in FLANDERS_SEASON)
    return season_data(svc, parcels, start, end), parcels


def run_real(args: argparse.Namespace) -> None:
    root = realdata_root()
    print("\n## Real season: Flanders 2019\n")
    if root is None:
        print("skipped: the real material is missing (set CROPAI_REALDATA or place it at ../shared/realdata)")
        return
    data, parcels = flanders_season(args.workdir, root / FLANDERS)
    settings = {**REAL_CONFIG, **overrides(args)}
    counts = parcels.fields_per_class
    print(
        f"{data.cube.shape[3]} x {data.cube.shape[2]} px, {data.cube.shape[0]} monthly bins from "
        f"{FLANDERS_SEASON[0]}; fields per class: " + ", ".join(f"{n} {k}" for n, k in counts.items())
    )
    print(f"Training: {describe(settings)}; held-out fields: train_model's own by-field split per seed.\n")
    print("| seed | family | held-out OA | held-out macro F1 | held-out fields | epoch | train s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    scores: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        baseline: tuple[Evaluation, int] | None = None  # the same for every family: same split, same seed
        for family in args.families:
            started = time.perf_counter()
            metrics = train_model(data, TrainConfig(seed=seed, family=family, **settings), parcels.legend).metrics
            seconds = time.perf_counter() - started
            print(real_row(seed, family, metrics, metrics["validation_fields"], metrics["best_epoch"], seconds))
            scores.setdefault(family, []).append((metrics["overall_accuracy"], metrics["macro_f1"]))
            baseline = baseline or (metrics["baseline"], metrics["validation_fields"])
        if baseline:
            print(real_row(seed, "baseline", *baseline, None, None))
            scores.setdefault("baseline", []).append((baseline[0]["overall_accuracy"], baseline[0]["macro_f1"]))
    for family, pairs in scores.items():
        oa, f1 = np.mean(pairs, axis=0)
        print(f"| mean | {family} | {oa:.3f} | {f1:.3f} | | | |")


def real_row(seed: int, family: str, metrics: Evaluation, fields: int, epoch: int | None, seconds: float | None) -> str:
    return (
        f"| {seed} | {family} | {metrics['overall_accuracy']:.3f} | {metrics['macro_f1']:.3f} | {fields} | "
        f"{'' if epoch is None else epoch} | {'' if seconds is None else f'{seconds:.0f}'} |"
    )


def numbers(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=numbers, default=[10, 30, 100], help="fields per class, e.g. 10,30,100")
    parser.add_argument("--seeds", type=numbers, default=[0, 1, 2], help="real season: one run each; generated: first")
    parser.add_argument("--shift-days", type=float, default=21.0, help="test season's sowing delay")
    parser.add_argument("--test-pixels", type=int, default=30_000, help="B's pixels scored; 0: all")
    parser.add_argument("--epochs", type=int, help="at most this many epochs (default per part)")
    parser.add_argument("--steps", type=int, help="steps per epoch (default per part)")
    parser.add_argument("--families", type=names, default=["cropnet", "presto"])
    parser.add_argument("--skip-generated", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cropai-bench-training")
    return parser.parse_args(argv)


def main() -> None:
    args = parse()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    print("command: " + shlex.join([".venv/bin/python", "bench/training.py", *sys.argv[1:]]))
    if not args.skip_generated:
        run_generated(args)
    if not args.skip_real:
        run_real(args)
    print(f"\nwall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
