"""`cropai up`, `cropai serve` and `cropai api`: Crop AI's servers, all on this machine or
one at a time."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Annotated

import typer
from sqlalchemy import exists, select

from cropai.cli.common import console, errors, prepare_catalogue, quiet_prefect
from cropai.cli.supervisor import Ports, Stack, StackError, start_stack
from cropai.config import DEV_SECRET_KEY, Settings, load_settings
from cropai.db import User, masked_url, upgrade_database
from cropai.errors import InvalidInput
from cropai.services import services


def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default CROPAI_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CROPAI_API_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (docs at /docs, admin at /admin)."""
    settings = load_settings()
    upgrade_database(services().engine)
    host, port = host or settings.api_host, port or settings.api_port
    errors.print(f"Crop AI API on http://{host}:{port} (docs /docs, admin /admin)", highlight=False)
    # Replace this process with uvicorn: the server does not carry the CLI's imports.
    command = [sys.executable, "-m", "api.serve", "--host", host, "--port", str(port), "--workers", str(workers)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def serve(
    limit: Annotated[
        int | None, typer.Option(min=1, help="Most flow runs at once (default CROPAI_FLOW_CONCURRENCY).")
    ] = None,
    schedules: Annotated[bool, typer.Option(help="Keep the ingestion's cron schedule active.")] = True,
    redis: Annotated[
        bool, typer.Option(help="Start a redis-server for the API's rate limits and caches (CROPAI_REDIS_URL).")
    ] = False,
) -> None:
    """Serve the deployments (analyze, ingest-scheduled, train) to the Prefect server in PREFECT_API_URL."""
    limit = limit or load_settings().flow_concurrency
    quiet_prefect()
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    # Prefect and the flows load only for the command that serves them.
    from flows.serve import serve_deployments

    errors.print(
        f"serving deployments analyze/analyze, ingest_scenes/ingest-scheduled, train/train ({limit} flow runs at once)",
        highlight=False,
    )
    serve_deployments(limit=limit, schedule_ingest=schedules)


def up(
    workers: Annotated[
        int, typer.Option(min=0, help="Dask workers (default CROPAI_DASK_WORKERS, else one per core).")
    ] = 0,
    api_port: Annotated[int | None, typer.Option(help="API port (default CROPAI_API_PORT).")] = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect server (API and UI) port.")] = 4200,
    scheduler_port: Annotated[int, typer.Option(help="Dask scheduler port.")] = 8786,
    dashboard_port: Annotated[int, typer.Option(help="Dask dashboard port.")] = 8787,
    schedules: Annotated[bool, typer.Option(help="Keep the ingestion's cron schedule active.")] = True,
    redis: Annotated[
        bool, typer.Option(help="Start a redis-server for the API's rate limits and caches (CROPAI_REDIS_URL).")
    ] = False,
) -> None:
    """Run the whole stack on this machine until Ctrl-C: a Prefect server (SQLite), a Dask
    scheduler and workers, the deployment server and the API, on loopback."""
    settings = load_settings()
    if settings.environment == "dev":
        _warn_dev_mode(settings)
    ports = Ports(prefect_port, api_port or settings.api_port, scheduler_port, dashboard_port)
    redis_binary = shutil.which("redis-server") if redis else None
    if redis and redis_binary is None:
        raise InvalidInput(
            "--redis needs a redis-server on the PATH: install Debian's redis-server, or leave --redis out"
        )
    if busy := ports.taken():
        raise InvalidInput(
            f"already in use on 127.0.0.1: {', '.join(busy)}; stop what listens there or pick "
            "another port with that option"
        )
    model = prepare_catalogue()
    console.print(f"catalogue migrated, store ready, model {model.name}@{model.version} registered", highlight=False)
    count = workers or settings.dask_workers or os.cpu_count() or 1
    logs = settings.home / "logs"
    console.print(f"starting Crop AI on 127.0.0.1 ({count} Dask worker(s)); logs in {logs}", highlight=False)
    try:
        # The stack turns Ctrl-C, SIGTERM (systemd, docker stop, kill) and SIGHUP into an
        # orderly stop of every program; a second one kills them all at once.
        with Stack(logs, report=lambda line: console.print(line, highlight=False)) as stack:
            start_stack(stack, settings, ports, count, schedules, redis_binary)
            console.print(
                f"\n[green]Crop AI is up[/]\n  map viewer      {ports.api_url}/app/\n"
                f"  Prefect UI      http://127.0.0.1:{ports.prefect}\n"
                f"  API docs        {ports.api_url}/docs\n  admin panel     {ports.api_url}/admin\n"
                f"  Dask scheduler  {ports.scheduler_address}\n"
                f"  Dask dashboard  http://127.0.0.1:{ports.dashboard}/status\n"
                f"  catalogue       {masked_url(settings.resolved_database_url)}\n"
                f"  store           {settings.resolved_storage_url}\n"
                + ("" if _has_accounts() else "  no account yet: cropai users create you@example.org --admin\n")
                + "Ctrl-C stops everything.",
                highlight=False,
            )
            stack.watch()
    except KeyboardInterrupt:
        console.print("stopped")
    except StackError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _warn_dev_mode(settings: Settings) -> None:
    signing = (
        "the API signs its tokens with the public development key: anyone who reaches the API can forge "
        "a login as any user, admins included"
        if settings.secret_key.get_secret_value() == DEV_SECRET_KEY
        else "the admin panel's session cookie is sent over plain HTTP"
    )
    errors.print(
        f"[bold red]WARNING: development mode (CROPAI_ENVIRONMENT=dev)[/]: {signing}. Keep this stack "
        "unreachable from other machines (no port forwarding, no proxy in front of it); for anything else set "
        "CROPAI_ENVIRONMENT=production and a CROPAI_SECRET_KEY of your own.",
        highlight=False,
        soft_wrap=True,
    )


def _has_accounts() -> bool:
    with services().sessions() as session:
        return bool(session.scalar(select(exists().select_from(User))))
