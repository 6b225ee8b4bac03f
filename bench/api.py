"""API latency and memory: an authenticated GET of an analysis against a bare FastAPI
hello-world, both on uvicorn (one worker process), loaded by wrk on loopback.

(a) hello-world: ``GET /`` of a three-line FastAPI app;
(b) Crop AI: ``GET /analyses/{id}`` of a completed analysis with its class table, as
    its analyst, with a JWT access token, served by ``cropai api`` (user and analysis
    in PostgreSQL when it answers at 127.0.0.1:5432, else SQLite). Completed answers
    are kept rendered for 10 s, so this is mostly the cached path;
(c) the same for a queued analysis: the database is read on every request.

Prints req/s and p50 / p99 latency at 64 connections for each, the ratios b/a and c/a
of req/s, and the API process' RSS at idle (after start, and after a first /readyz) and
at its peak under load. Targets: p99 <= 50 ms, ratio >= 0.3, idle RSS <= 120 MB.
Needs ``wrk`` (Debian: ``apt-get install wrk``).

    .venv/bin/python bench/api.py [--connections 64] [--seconds 15]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cropai.cli.loopback import free_port, wait_for_http  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HELLO = (
    "from fastapi import FastAPI\napp = FastAPI()\n\n"
    "@app.get('/')\ndef hello() -> dict:\n    return {'hello': 'world'}\n"
)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def database_url() -> tuple[str, str | None]:
    """A fresh PostgreSQL schema when the server answers, else an SQLite file."""
    from sqlalchemy import create_engine, make_url, text

    try:
        engine = create_engine(POSTGRES, connect_args={"connect_timeout": 2})
        schema = f"bench_api_{uuid.uuid4().hex[:8]}"
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False), schema
    except Exception:
        return "", None


def seed(env: dict[str, str]) -> tuple[str, str, str]:
    """An analyst with a completed analysis (13 class rows) and a queued one; returns both ids and the email."""
    os.environ.update(env)
    from cropai.accounts import create_user
    from cropai.analysis_records import create_analysis
    from cropai.analysis_runs import claim, finish, record_outputs
    from cropai.crops import CLASSES
    from cropai.db import AnalysisClassStat, upgrade_database
    from cropai.services import services

    svc = services()
    upgrade_database(svc.engine)
    user = create_user(svc.sessions, "bench@example.org", "bench-password-long", "analyst")
    aoi = {"type": "Polygon", "coordinates": [[[1.6, 48.2], [1.64, 48.2], [1.64, 48.22], [1.6, 48.22], [1.6, 48.2]]]}
    analysis_id = create_analysis(
        svc.sessions, aoi, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0", owner_id=user.id, name="bench"
    )
    with svc.sessions.begin() as session:
        for crop in CLASSES:
            session.add(
                AnalysisClassStat(
                    analysis_id=analysis_id,
                    class_id=crop.id,
                    class_name=crop.name,
                    pixel_count=1000 * crop.id,
                    area_ha=10.0 * crop.id,
                )
            )
    claim(svc.sessions, analysis_id, 1, uuid.uuid4())  # completed as its flow run would complete it
    record_outputs(
        svc.sessions, analysis_id, f"analyses/{analysis_id}/cropmap.tif", f"analyses/{analysis_id}/quicklook.png"
    )
    finish(svc.sessions, analysis_id)
    queued_id = create_analysis(
        svc.sessions, aoi, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0", owner_id=user.id, name="bench queued"
    )
    svc.engine.dispose()
    return str(analysis_id), str(queued_id), user.email


def login(port: int, email: str) -> str:
    import json
    import urllib.parse

    form = urllib.parse.urlencode({"username": email, "password": "bench-password-long"}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/token", data=form, timeout=10) as response:
        return json.load(response)["access_token"]


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{url} answered {non_2xx.group(1)} errors under load:\n{output}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), "p50": ms("50%"), "p99": ms("99%")}


def serve(command: list[str], env: dict[str, str], port: int, cwd: Path, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_for_http(
        f"http://127.0.0.1:{port}/healthz" if "cropai.cli" in " ".join(command) else f"http://127.0.0.1:{port}/"
    )
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/api.py needs wrk on the PATH (Debian: apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="cropai-bench-api-"))
    url, schema = database_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROPAI_", "PREFECT_"))}
    env.update(
        CROPAI_HOME=str(work / "home"),
        CROPAI_DATABASE_URL=url,
        CROPAI_PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api",
    )  # nobody there: /readyz loads the client
    analysis_id, queued_id, email = seed(env)
    (work / "hello.py").write_text(HELLO)
    results = {}
    try:
        port = free_port()
        hello = serve(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "hello:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env,
            port,
            work,
            work / "hello.log",
        )
        try:
            results["hello"] = wrk(f"http://127.0.0.1:{port}/", args.connections, args.seconds, {})
        finally:
            stop(hello)

        port = free_port()
        api = serve(
            [sys.executable, "-c", "from cropai.cli import main; main()", "api", "--port", str(port)],
            env,
            port,
            ROOT,
            work / "api.log",
        )
        try:
            time.sleep(1)
            idle_mb = rss_mb(api.pid)
            # 503: nobody at the Prefect URL; the probe ran all the same.
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30)
            idle_ready_mb = rss_mb(api.pid)
            token = login(port, email)
            auth = {"Authorization": f"Bearer {token}"}
            results["api"] = wrk(
                f"http://127.0.0.1:{port}/analyses/{analysis_id}", args.connections, args.seconds, auth
            )
            results["queued"] = wrk(
                f"http://127.0.0.1:{port}/analyses/{queued_id}", args.connections, args.seconds, auth
            )
            peak_mb = rss_mb(api.pid, "VmHWM")
        finally:
            stop(api)
    finally:
        if schema:
            from sqlalchemy import create_engine, text

            with create_engine(POSTGRES).begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        shutil.rmtree(work, ignore_errors=True)

    hello_r, api_r, queued_r = results["hello"], results["api"], results["queued"]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"database: {'PostgreSQL' if schema else 'SQLite'}; wrk 1 thread, {args.connections} connections, "
        f"{args.seconds} s each"
    )
    print(f"{'':38}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'(a) FastAPI hello-world':38}{hello_r['rps']:>10.0f}{hello_r['p50']:>10.2f}{hello_r['p99']:>10.2f}")
    print(f"{'(b) GET /analyses/{id} (JWT, DB)':38}{api_r['rps']:>10.0f}{api_r['p50']:>10.2f}{api_r['p99']:>10.2f}")
    label = "(c) GET /analyses/{id} queued (DB)"
    print(f"{label:38}{queued_r['rps']:>10.0f}{queued_r['p50']:>10.2f}{queued_r['p99']:>10.2f}")
    print(
        f"ratio b/a (req/s): {api_r['rps'] / hello_r['rps']:.2f}, c/a: {queued_r['rps'] / hello_r['rps']:.2f}   "
        "(target >= 0.3; p99 target <= 50 ms)"
    )
    print(
        f"API RSS: idle {idle_mb:.0f} MB after start, {idle_ready_mb:.0f} MB after a first /readyz; "
        f"peak under load {peak_mb:.0f} MB   (target idle <= 120 MB)"
    )


if __name__ == "__main__":
    main()
