"""Ingestion throughput against a plain copy of the same files to the same store.

Two kinds of input, each measured in a fresh process per store (the local folder store,
and an S3 API server on loopback (moto)), so that each row's peak RSS is its own:

- GeoTIFF: N synthetic scenes as plain (non-COG) GeoTIFFs, at least 1 GB in all;
- SAFE: N Sentinel-2 L2A products as Copernicus Data Space ``.zip`` archives, real-sized
  (10980 px 10 m bands, 5490 px 20 m bands and SCL), each a different product: the REAL
  ESA metadata of the test material (:mod:`testkit.realdata`) with lossless JPEG 2000
  bands written by GDAL. Without the real material the SAFE rows are skipped, saying so,
  and the bench exits with status 2.

For each kind and store:

- copy: ``store.put`` of every file, one after the other (median of three);
- ingest: the ``ingest_scenes`` flow (Prefect ephemeral API, started before the
  clock runs) into an empty catalogue: hash, validate, COG conversion with
  overviews, footprint, cloud cover, upload, catalogue row. A SAFE zip is read in
  place through /vsizip, its JPEG 2000 decoded by OpenJPEG and its BOA offset
  (-1000 from baseline 04.00) taken off.

Prints MB/s (source megabytes per second) for both, their ratio, and each
process's own peak RSS (see ``peak_rss_mb``). Target: ingest >= 0.5 x copy on the
local store, peak RSS < 1.5 GB. The SAFE ingest must catalogue one scene per zip with
the processing baseline its product name states and that baseline's offset (nonzero
from 04.00); the bench fails otherwise. SAFE rows run on the local store only by
default: a real-sized product takes minutes to ingest on two cores.

    .venv/bin/python bench/ingest.py [--scenes 12] [--size-px 2000] [--safe 2] [--safe-size-px 10980]
        [--stores local,s3] [--safe-stores local] [--workdir /tmp/cropai-bench-ingest]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # testkit and the CLI's loopback helpers live beside cropai

from testkit.realdata import SAFE_0214, SAFE_0400, SAFE_0509, realdata_root  # noqa: E402

METRES_PER_DEGREE = 111_320.0
FILE_PATTERNS = {"gtiff": "*.tif", "safe": "*.zip"}
# One real product per zip, so that no zip is a duplicate of another.
SAFE_TEMPLATES = (SAFE_0400, SAFE_0509, SAFE_0214)
BASELINE_IN_NAME = re.compile(r"_N(\d\d)(\d\d)_")
FIRST_BASELINE_WITH_OFFSET = "04.00"
MISSING_REALDATA_EXIT = 2


def generate(folder: Path, scenes: int, size_px: int) -> list[Path]:
    """Synthetic scenes as striped, uncompressed GeoTIFFs (cached between runs)."""
    from cropai.synth import SynthSpec, synthesize

    existing = sorted((folder / "scenes").glob("*.tif"))
    if len(existing) == scenes:
        return existing
    shutil.rmtree(folder, ignore_errors=True)
    lat = 48.2
    height_deg = size_px * 10 / METRES_PER_DEGREE
    width_deg = height_deg / 0.666  # cos(48.2 degrees)
    spec = SynthSpec(
        (1.5, lat, 1.5 + width_deg * 0.995, lat + height_deg * 0.995),
        date(2025, 4, 1),
        date(2025, 4, 1) + timedelta(days=5 * (scenes - 1)),
        seed=11,
        file_format="gtiff",
        partial_swath_probability=0.0,
    )
    return [s.path for s in synthesize(spec, folder).scenes]


def generate_safe(folder: Path, count: int, size_px: int) -> list[Path] | None:
    """``count`` SAFE zips of different real products, ``size_px`` at 10 m (cached between
    runs, zip by zip); None when a zip must be written and the real material is missing."""
    wanted = {
        folder / f"{template.removeprefix('esa_').removesuffix('.SAFE')}.zip": template
        for template in SAFE_TEMPLATES[:count]
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stale in set(folder.glob("*.zip")) - wanted.keys():
        stale.unlink()
    for archive, template in wanted.items():
        if archive.is_file():
            continue
        if realdata_root() is None:
            return None
        from testkit.safe_products import write_safe

        # Written beside, then renamed: an interrupted run leaves no half zip to be reused.
        scratch = folder / ".partial"
        shutil.rmtree(scratch, ignore_errors=True)
        write_safe(scratch, template, size_px, zipped=True, texture=True).rename(archive)
        shutil.rmtree(scratch)
    return sorted(wanted)


def measure(kind: str, store_kind: str, scenes_dir: Path, endpoint: str | None) -> dict[str, Any]:
    """Runs in a fresh process: copy, then ingest, the ``kind`` files into an empty store of ``store_kind``."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    work = Path(tempfile.mkdtemp(prefix=f"cropai-bench-{store_kind}-"))
    env = {"CROPAI_HOME": str(work / "home")}
    if store_kind == "s3":
        env.update(
            CROPAI_STORAGE_URL="s3://bench",
            CROPAI_S3_ENDPOINT=endpoint or "",
            CROPAI_S3_SECURE="false",
            CROPAI_S3_ACCESS_KEY="bench",
            CROPAI_S3_SECRET_KEY="bench-secret",
        )
    os.environ.update(env)

    from sqlalchemy import select

    from cropai.config import load_settings
    from cropai.db import IngestRun, Scene, upgrade_database
    from cropai.ingest import IngestSummary
    from cropai.services import services
    from cropai.storage import S3Store
    from flows.ingest import ingest_scenes

    settings = load_settings()
    svc = services(settings)
    upgrade_database(svc.engine)
    if isinstance(svc.store, S3Store):
        svc.store.ensure_bucket()
    files = sorted(scenes_dir.glob(FILE_PATTERNS[kind]))
    total_mb = sum(f.stat().st_size for f in files) / 1e6

    # The copy runs three times and the median counts: into the page cache it swings
    # between disk and memory speed with the kernel's writeback. Dirty pages are
    # flushed (untimed) before each timed phase so that neither inherits the other's.
    copies = []
    for attempt in range(3):
        os.sync()
        started = time.perf_counter()
        for path in files:
            svc.store.put(f"copy-{attempt}/{path.name}", path)
        copies.append(time.perf_counter() - started)
    copy_s = sorted(copies)[1]

    empty = work / "empty"
    empty.mkdir()
    ingest_scenes(str(empty))  # starts the ephemeral Prefect API outside the timing
    os.sync()
    started = time.perf_counter()
    summary = ingest_scenes(str(scenes_dir))
    ingest_s = time.perf_counter() - started
    with svc.sessions() as session:
        if not isinstance(summary, IngestSummary):
            raise SystemExit(f"the ingest run failed: {summary}")
        if summary.ingested != len(files):
            run = session.get_one(IngestRun, summary.ingest_run_id)
            raise SystemExit(f"{summary.ingested} of {len(files)} files ingested; rejections: {run.rejections}")
        scenes = [
            {"product_id": s.product_id, "baseline": s.processing_baseline, "offset": s.radiometric_offset}
            for s in session.scalars(select(Scene).order_by(Scene.product_id))
        ]
    shutil.rmtree(work, ignore_errors=True)
    return {
        "files": len(files),
        "total_mb": total_mb,
        "copy_mb_s": total_mb / copy_s,
        "ingest_mb_s": total_mb / ingest_s,
        "ingest_s": ingest_s,
        "peak_rss_mb": peak_rss_mb(),
        "concurrency": settings.ingest_concurrency,
        "scenes": scenes,
    }


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: VmHWM where Linux has it, else ru_maxrss. On Linux
    ru_maxrss is no good here: a process started by fork and exec inherits its parent's
    high-water mark there (a parent that has just generated the GeoTIFFs holds 1.4 GB),
    while VmHWM belongs to the new program's memory alone."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def safe_problems(scenes: list[dict[str, Any]], archives: list[Path]) -> list[str]:
    """What is wrong with the catalogued SAFE scenes: one per zip, each with the processing
    baseline its product name states and that baseline's BOA offset (nonzero from 04.00, 0 before)."""
    products = sorted(str(scene["product_id"]) for scene in scenes)
    if products != [archive.stem for archive in archives]:
        return [f"catalogued {products}, expected one scene per zip: {[a.stem for a in archives]}"]
    problems = []
    for scene in scenes:
        named = BASELINE_IN_NAME.search(scene["product_id"])
        expected = f"{named[1]}.{named[2]}" if named else None
        offset_expected = expected is not None and expected >= FIRST_BASELINE_WITH_OFFSET
        if scene["baseline"] is None or scene["baseline"] != expected:
            problems.append(f"{scene['product_id']}: processing_baseline {scene['baseline']!r}, expected {expected!r}")
        elif bool(scene["offset"]) != offset_expected:
            wanted = "a nonzero offset" if offset_expected else "offset 0"
            problems.append(f"{scene['product_id']}: radiometric_offset {scene['offset']}, expected {wanted}")
    return problems


def start_s3_server() -> tuple[subprocess.Popen[bytes], str]:
    from cropai.cli.loopback import free_port, wait_for_http

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_http(f"http://127.0.0.1:{port}/")
    return server, f"127.0.0.1:{port}"


def run_child(kind: str, store_kind: str, folder: Path, endpoint: str) -> dict[str, Any]:
    """``measure`` in a fresh process; a failure ends the bench with the child's own error."""
    child = subprocess.run(
        [sys.executable, __file__, "--child", kind, store_kind, str(folder), endpoint],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if child.returncode:
        sys.exit(f"{kind} on the {store_kind} store failed (exit {child.returncode}):\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def print_header(label: str, width: int) -> None:
    print(f"{label:<{width}} {'copy MB/s':>10} {'ingest MB/s':>12} {'ratio':>6} {'ingest s':>9} {'peak RSS':>9}")


def print_row(label: str, width: int, figures: dict[str, Any]) -> None:
    ratio = figures["ingest_mb_s"] / figures["copy_mb_s"]
    # Small figures keep their digits (a SAFE ingest runs at about 1 MB/s); the GeoTIFF rows print as before.
    copy, ingest = (f"{v:.0f}" if v >= 10 else f"{v:.2f}" for v in (figures["copy_mb_s"], figures["ingest_mb_s"]))
    print(
        f"{label:<{width}} {copy:>10} {ingest:>12} {ratio:>6.{2 if ratio >= 0.1 else 4}f} "
        f"{figures['ingest_s']:>9.1f} {figures['peak_rss_mb']:>6.0f} MB"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12, help="synthetic GeoTIFF scenes (0 to skip)")
    parser.add_argument("--size-px", type=int, default=2000, help="scene width and height in pixels")
    parser.add_argument("--safe", type=int, default=2, help=f"SAFE zips, 0 to {len(SAFE_TEMPLATES)} (0 to skip)")
    parser.add_argument("--safe-size-px", type=int, default=10980, help="10 m band side in pixels (ESA's: 10980)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cropai-bench-ingest")
    parser.add_argument("--stores", default="local,s3", help="stores for the GeoTIFF rows")
    parser.add_argument("--safe-stores", default="local", help="stores for the SAFE rows")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "STORE", "DIR", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0 <= args.safe <= len(SAFE_TEMPLATES):
        parser.error(f"--safe is 0 to {len(SAFE_TEMPLATES)}: each zip is a different real product")
    if args.safe_size_px % 6:
        parser.error("--safe-size-px must be a multiple of 6 (the 60 m grid is a sixth of the 10 m one)")
    return args


def prepare_gtiff(args: argparse.Namespace) -> list[Path]:
    if not args.scenes:
        return []
    started = time.perf_counter()
    files = generate(args.workdir / "gtiff", args.scenes, args.size_px)
    total_gb = sum(f.stat().st_size for f in files) / 1e9
    print(
        f"data: {len(files)} non-COG GeoTIFF scenes, {args.size_px} x {args.size_px} px x 11 bands, "
        f"{total_gb:.2f} GB (generated or reused in {time.perf_counter() - started:.0f} s)"
    )
    return files


def prepare_safe(args: argparse.Namespace) -> list[Path] | None:
    if not args.safe:
        return []
    started = time.perf_counter()
    archives = generate_safe(args.workdir / f"safe-{args.safe_size_px}px", args.safe, args.safe_size_px)
    if archives is None:
        print(
            "SAFE rows skipped: the real Sentinel-2 material is missing (set CROPAI_REALDATA or place it at "
            "../shared/realdata; --safe 0 leaves the rows out)",
            file=sys.stderr,
        )
        return None
    baselines = ", ".join(f"{m[1]}.{m[2]}" for a in archives if (m := BASELINE_IN_NAME.search(a.name)))
    total_gb = sum(a.stat().st_size for a in archives) / 1e9
    print(
        f"data: {len(archives)} SAFE L2A zips (real ESA metadata, baselines {baselines}), "
        f"{args.safe_size_px} px 10 m bands, lossless JPEG 2000, {total_gb:.2f} GB "
        f"(generated or reused in {time.perf_counter() - started:.0f} s)"
    )
    return archives


def gtiff_rows(files: list[Path], stores: list[str], endpoint: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    print_header("store", 6)
    for store_kind in stores:
        figures = run_child("gtiff", store_kind, files[0].parent, endpoint)
        print_row(store_kind, 6, figures)
    return figures


def safe_rows(archives: list[Path], stores: list[str], endpoint: str) -> dict[str, Any]:
    """The SAFE rows, each checked against what the zips hold; a wrong catalogue ends the bench."""
    figures: dict[str, Any] = {}
    print_header("SAFE zips, store", 16)
    for store_kind in stores:
        figures = run_child("safe", store_kind, archives[0].parent, endpoint)
        print_row(f"SAFE zips, {store_kind}", 16, figures)
        problems = safe_problems(figures["scenes"], archives)
        if problems:
            sys.exit("SAFE ingest check FAILED:\n  " + "\n  ".join(problems))
    checked = ", ".join(f"{s['baseline']} offset {s['offset']}" for s in figures["scenes"])
    print(f"checked: {len(archives)} SAFE scenes catalogued ({checked})")
    return figures


def main() -> None:
    args = parse_args()
    if args.child:
        kind, store_kind, scenes_dir, endpoint = args.child
        print(json.dumps(measure(kind, store_kind, Path(scenes_dir), endpoint)))
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    files = prepare_gtiff(args)
    archives = prepare_safe(args)
    stores, safe_stores = args.stores.split(","), args.safe_stores.split(",")
    needs_s3 = (files and "s3" in stores) or (archives and "s3" in safe_stores)
    server, endpoint = start_s3_server() if needs_s3 else (None, "")
    try:
        figures = gtiff_rows(files, stores, endpoint) if files else {}
        figures = safe_rows(archives, safe_stores, endpoint) if archives else figures
        if figures:
            print(f"concurrency: {figures['concurrency']} scenes at once (CROPAI_INGEST_CONCURRENCY)")
            print("target: ingest >= 0.5 x copy on the local store, peak RSS < 1500 MB")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
    if archives is None:
        sys.exit(MISSING_REALDATA_EXIT)


if __name__ == "__main__":
    main()
