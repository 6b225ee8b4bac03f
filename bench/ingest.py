"""Ingestion throughput against a plain copy of the same files to the same store.

Generates N synthetic scenes as plain (non-COG) GeoTIFFs, at least 1 GB in all,
then for the local folder store and for an S3 API server on loopback (moto),
each in a fresh process:

- copy: ``store.put`` of every file, one after the other (median of three);
- ingest: the ``ingest_scenes`` flow (Prefect ephemeral API, started before the
  clock runs) into an empty catalogue: hash, validate, COG conversion with
  overviews, footprint, cloud cover, upload, catalogue row.

Prints MB/s (source megabytes per second) for both, their ratio, and each
process's peak RSS. Target: ingest >= 0.5 x copy on the local store, peak RSS < 1.5 GB.

    .venv/bin/python bench/ingest.py [--scenes 12] [--size-px 2000] [--workdir /tmp/cropai-bench-ingest]
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
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRES_PER_DEGREE = 111_320.0


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


def measure(store_kind: str, scenes_dir: Path, endpoint: str | None) -> dict[str, float]:
    """Runs in a fresh process: copy, then ingest, into an empty store of ``store_kind``."""
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

    from cropai.config import load_settings
    from cropai.db import upgrade_database
    from cropai.services import services
    from cropai.storage import S3Store
    from flows.ingest import ingest_scenes

    settings = load_settings()
    svc = services(settings)
    upgrade_database(svc.engine)
    if isinstance(svc.store, S3Store):
        svc.store.ensure_bucket()
    files = sorted(scenes_dir.glob("*.tif"))
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
    assert summary.ingested == len(files), summary
    shutil.rmtree(work, ignore_errors=True)
    return {
        "files": len(files),
        "total_mb": total_mb,
        "copy_mb_s": total_mb / copy_s,
        "ingest_mb_s": total_mb / ingest_s,
        "ingest_s": ingest_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "concurrency": settings.ingest_concurrency,
    }


def start_s3_server() -> tuple[subprocess.Popen[bytes], str]:
    sys.path.insert(0, str(ROOT))
    from cropai.cli.loopback import free_port, wait_for_http

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_http(f"http://127.0.0.1:{port}/")
    return server, f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--size-px", type=int, default=2000, help="scene width and height in pixels")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cropai-bench-ingest")
    parser.add_argument("--stores", default="local,s3")
    parser.add_argument("--child", nargs=3, metavar=("STORE", "SCENES_DIR", "ENDPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        store_kind, scenes_dir, endpoint = args.child
        print(json.dumps(measure(store_kind, Path(scenes_dir), endpoint)))
        return

    started = time.perf_counter()
    files = generate(args.workdir, args.scenes, args.size_px)
    total_gb = sum(f.stat().st_size for f in files) / 1e9
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"data: {len(files)} non-COG GeoTIFF scenes, {args.size_px} x {args.size_px} px x 11 bands, "
        f"{total_gb:.2f} GB (generated or reused in {time.perf_counter() - started:.0f} s)"
    )
    server, endpoint = start_s3_server()
    try:
        print(f"{'store':<6} {'copy MB/s':>10} {'ingest MB/s':>12} {'ratio':>6} {'ingest s':>9} {'peak RSS':>9}")
        for store_kind in args.stores.split(","):
            child = subprocess.run(
                [sys.executable, __file__, "--child", store_kind, str(files[0].parent), endpoint],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            )
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            ratio = figures["ingest_mb_s"] / figures["copy_mb_s"]
            print(
                f"{store_kind:<6} {figures['copy_mb_s']:>10.0f} {figures['ingest_mb_s']:>12.0f} {ratio:>6.2f} "
                f"{figures['ingest_s']:>9.1f} {figures['peak_rss_mb']:>6.0f} MB"
            )
        print(f"concurrency: {figures['concurrency']} scenes at once (CROPAI_INGEST_CONCURRENCY)")
        print("target: ingest >= 0.5 x copy on the local store, peak RSS < 1500 MB")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
