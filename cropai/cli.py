"""The ``cropai`` command line. Each command is a thin shell over the core modules;
domain errors become a one-line message and exit status 2."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cropai.config import DEV_SECRET_KEY, Settings, load_settings
from cropai.errors import CropAIError, InvalidInput

app = typer.Typer(
    help="Crop AI: satellite crop-type mapping.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Create and migrate the catalogue database.", no_args_is_help=True)
models_app = typer.Typer(help="The registry of model versions.", no_args_is_help=True)
store_app = typer.Typer(help="Inspect and prepare the object store.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts of the API.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(store_app, name="store")
app.add_typer(models_app, name="models")

console = Console()
errors = Console(stderr=True)

# A small area of arable land in the Beauce (France), about 3 km x 3.3 km: the demo's default.
DEMO_BBOX = "1.60,48.20,1.64,48.23"
DEMO_START = "2025-03-01"
DEMO_END = "2025-10-31"
# The demo analysis covers the synthetic area (a hair inside it, clear of its edge).
DEMO_AOI = {
    "type": "Polygon",
    "coordinates": [[[1.601, 48.201], [1.639, 48.201], [1.639, 48.229], [1.601, 48.229], [1.601, 48.201]]],
}


def _settings() -> Settings:
    return load_settings()


def _parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(
            f"--bbox {text!r}: expected four numbers 'minx,miny,maxx,maxy' in degrees (lon/lat)"
        ) from None
    return minx, miny, maxx, maxy


def _parse_date(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r}: expected a date as YYYY-MM-DD") from None


@app.command()
def synth(
    out: Annotated[Path | None, typer.Argument(help="Output folder (default: CROPAI_HOME/synthetic).")] = None,
    bbox: Annotated[str, typer.Option(help="minx,miny,maxx,maxy in degrees (EPSG:4326).")] = DEMO_BBOX,
    start: Annotated[str, typer.Option(help="First acquisition date, YYYY-MM-DD.")] = DEMO_START,
    end: Annotated[str, typer.Option(help="Last acquisition date, YYYY-MM-DD.")] = DEMO_END,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    revisit_days: Annotated[int, typer.Option(help="Days between acquisitions.")] = 5,
    cloud_cover: Annotated[float, typer.Option(help="Mean cloud cover, 0..1.")] = 0.3,
    file_format: Annotated[
        str, typer.Option("--format", help="cog (cloud-optimised) or gtiff (plain striped GeoTIFF).")
    ] = "cog",
) -> None:
    """Generate a synthetic Sentinel-2 L2A scene set with labels and field parcels."""
    from cropai.synth import SynthSpec

    spec = SynthSpec(
        bbox_wgs84=_parse_bbox(bbox),
        start=_parse_date("--start", start),
        end=_parse_date("--end", end),
        seed=seed,
        revisit_days=revisit_days,
        mean_cloud_cover=cloud_cover,
        file_format=file_format,  # type: ignore[arg-type]  # validated by the spec
    )
    _synthesize(spec, out or _settings().home / "synthetic")


def _synthesize(spec: Any, out_dir: Path) -> Any:
    from cropai.synth import acquisition_times, synthesize

    spec.validate()
    with _progress() as progress:
        task = progress.add_task("synthesise scenes", total=len(acquisition_times(spec)))
        result = synthesize(spec, out_dir, on_scene=lambda scene: progress.advance(task))
    cloudy = sum(scene.cloud_fraction for scene in result.scenes) / max(len(result.scenes), 1)
    console.print(
        f"[green]wrote[/] {len(result.scenes)} scenes of {result.grid.width} x {result.grid.height} px "
        f"({result.grid.crs}, 10 m, mean cloud {cloudy:.0%}) to {result.root}\n"
        f"  labels:  {result.labels_path}\n  parcels: {result.parcels_path}\n"
        f"  manifest: {result.manifest_path}"
    )
    return result


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Argument(
            help="A folder or file, store:PREFIX (an inbox in the object store), a STAC catalog "
            "(.json path or URL), or a STAC API URL with --stac-api."
        ),
    ],
    stac_api: Annotated[bool, typer.Option(help="SOURCE is a STAC API to search.")] = False,
    collection: Annotated[str, typer.Option(help="STAC collection to search.")] = "sentinel-2-l2a",
    bbox: Annotated[str | None, typer.Option(help="Search box minx,miny,maxx,maxy (degrees).")] = None,
    start: Annotated[str | None, typer.Option(help="Search from this date, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Search up to this date, YYYY-MM-DD.")] = None,
    max_cloud: Annotated[float | None, typer.Option(help="Largest eo:cloud_cover, percent.")] = None,
    max_items: Annotated[int, typer.Option(help="Stop the search after this many items.")] = 100,
    band_mapping: Annotated[
        str | None, typer.Option(help="Names of the file's bands in order, e.g. B02,B03,B04,...; '-' skips one.")
    ] = None,
) -> None:
    """Ingest scenes into the store and the catalogue (the `ingest_scenes` flow, run here)."""
    settings = _settings()
    search = None
    if stac_api or any(v is not None for v in (bbox, start, end, max_cloud)):
        from cropai.sources import StacSearch

        search = StacSearch(
            collections=[collection],
            bbox=_parse_bbox(bbox) if bbox else None,
            start=_parse_date("--start", start) if start else None,
            end=_parse_date("--end", end) if end else None,
            max_cloud_cover=max_cloud,
            max_items=max_items,
        )
    mapping = None
    if band_mapping:
        mapping = [None if name.strip() in ("-", "") else name.strip() for name in band_mapping.split(",")]
    _ingest(settings, source, search, mapping)


def _ingest(settings: Settings, source: str, search: Any = None, mapping: list[str | None] | None = None) -> dict:
    state = _run_with_progress(settings, source, lambda flow: flow(source, search, mapping, return_state=True))
    summary = state.result(raise_on_failure=False)
    if state.is_failed():
        errors.print(f"[red]ingest failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    console.print(
        f"[green]ingest run {summary.ingest_run_id}:[/] {summary.found} found, "
        f"{summary.ingested} ingested, {summary.skipped} skipped as duplicates, "
        f"{summary.rejected} rejected"
    )
    return summary


@app.command()
def analyze(
    aoi: Annotated[Path, typer.Option(help="Area of interest: a GeoJSON Polygon, Feature or one-feature collection.")],
    start: Annotated[str, typer.Option(help="First day of the season, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day of the season, YYYY-MM-DD.")],
    model: Annotated[str, typer.Option(help="Model version, name@version or name@latest.")] = "cropnet@latest",
    max_cloud: Annotated[float | None, typer.Option(help="Skip scenes cloudier than this fraction, 0..1.")] = None,
    name: Annotated[str, typer.Option(help="A name for the analysis.")] = "",
) -> None:
    """Map the crops of an AOI over a season (the `analyze` flow, run here on a local Dask cluster)."""
    import json

    try:
        geojson = json.loads(aoi.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"--aoi {aoi}: expected a readable GeoJSON file ({exc})") from None
    options = {} if max_cloud is None else {"max_cloud_fraction": max_cloud}
    _run_analysis(_settings(), geojson, _parse_date("--start", start), _parse_date("--end", end), model, name, options)


def _run_analysis(
    settings: Settings, aoi: dict, start: date, end: date, model: str, name: str = "", options: dict | None = None
) -> dict:
    from cropai.analysis_records import create_analysis
    from models.registry import ModelRef

    ModelRef.parse(model)
    sessions = _services().sessions
    analysis_id = create_analysis(sessions, aoi, start, end, model, name=name, options=options)
    console.print(f"analysis {analysis_id}: {start} to {end} with {model}")
    _quiet_prefect()
    from flows.analyze import analyze as analyze_flow

    with console.status("planning, predicting on the local Dask cluster, writing the map ..."):
        state = analyze_flow(str(analysis_id), return_state=True)
    if not state.is_completed():
        errors.print(f"[red]analysis {analysis_id} failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    summary = state.result()
    table = Table("class", "pixels", "hectares", title=f"crops of analysis {analysis_id}")
    for area in summary.classes:
        table.add_row(area.class_name, f"{area.pixel_count:,}", f"{area.area_ha:,.2f}")
    console.print(table)
    console.print(
        f"[green]crop map[/]  {summary.map}\n[green]quicklook[/] {summary.quicklook}\n"
        f"{summary.fields} field(s) predicted"
    )
    return summary


@app.command()
def demo() -> None:
    """Run Crop AI end to end on the embedded defaults: migrate the catalogue, prepare the
    store, register the shipped model, synthesise a season of scenes over a farming area,
    ingest them, upload its field parcels and map its crops."""
    from cropai.synth import SynthSpec

    settings = _settings()
    model = _prepare_catalogue()
    spec = SynthSpec(_parse_bbox(DEMO_BBOX), date.fromisoformat(DEMO_START), date.fromisoformat(DEMO_END))
    console.print(
        f"[green]model[/] {model.name}@{model.version} (macro F1 {model.metrics.get('macro_f1')} "
        "on held-out synthetic fields)"
    )
    made = _synthesize(spec, settings.home / "synthetic")
    _ingest(settings, str(made.root / "scenes"))
    fields = _demo_fields(made)
    summary = _run_analysis(settings, DEMO_AOI, date(2025, 4, 1), date(2025, 9, 30), "cropnet@latest", "demo")
    _report_field_accuracy(summary.analysis_id, fields)
    console.print(f"[green]catalogue[/] {settings.resolved_database_url}\n[green]store[/] {_services().store.url}")


def _demo_fields(made: Any) -> dict[int, str]:
    """The synthetic crop parcels as fields (no owner), so the demo predicts a crop per field."""
    import json

    from sqlalchemy import select

    from cropai.db import FieldParcel
    from cropai.fields import add_fields

    sessions = _services().sessions
    with sessions() as session:  # a second demo reuses the fields of the first
        known = {
            row.external_id: row.id
            for row in session.scalars(select(FieldParcel).where(FieldParcel.owner_id.is_(None)))
        }
    features = [f for f in json.loads(made.parcels_path.read_text())["features"] if f["properties"]["is_crop"]]
    new = [f for f in features if str(f["id"]) not in known]
    ids = dict(
        zip(
            (str(f["id"]) for f in new),
            add_fields(sessions, {"type": "FeatureCollection", "features": new}),
            strict=True,
        )
    )
    ids.update(known)
    return {ids[str(f["id"])]: f["properties"]["class_name"] for f in features}


def _report_field_accuracy(analysis_id: str, truth: dict[int, str]) -> None:
    import uuid

    from sqlalchemy import select

    from cropai.db import FieldPrediction

    with _services().sessions() as session:
        predictions = session.scalars(
            select(FieldPrediction).where(FieldPrediction.analysis_id == uuid.UUID(analysis_id))
        ).all()
    scored = [p for p in predictions if p.field_id in truth]
    right = sum(p.class_name == truth[p.field_id] for p in scored)
    console.print(f"fields predicted right (against the synthetic truth): {right} of {len(scored)}")


def _run_with_progress(settings: Settings, source: str, call: Callable[[Any], Any]) -> Any:
    """Run the ingest flow in a thread while a progress bar follows its ingest_runs row."""
    _quiet_prefect()
    from sqlalchemy import select

    from cropai.db import IngestRun, utcnow
    from cropai.services import services
    from flows.ingest import ingest_scenes

    sessions = services(settings).sessions
    began = utcnow().replace(tzinfo=None) if settings.resolved_database_url.startswith("sqlite") else utcnow()
    with ThreadPoolExecutor(1) as pool, _progress() as progress:
        bar = progress.add_task(f"ingest {source}", total=None)
        running = pool.submit(call, ingest_scenes)
        while not running.done():
            with sessions() as session:
                run = session.scalar(
                    select(IngestRun)
                    .where(IngestRun.source == source, IngestRun.started_at >= began)
                    .order_by(IngestRun.id.desc())
                )
            if run is not None and run.found:
                progress.update(bar, total=run.found, completed=run.ingested + run.skipped + run.rejected)
            time.sleep(0.5)
        state = running.result()
        if state.is_completed():
            progress.update(bar, completed=progress.tasks[0].total or 0)
        return state


@app.command()
def train(
    scenes: Annotated[
        Path | None, typer.Argument(help="Folder of scenes; empty: the default synthetic training set.")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Label raster on the scenes' grid.")] = None,
    parcels: Annotated[Path | None, typer.Option(help="Field parcels (GeoJSON) to split by.")] = None,
    name: Annotated[str, typer.Option(help="Model name.")] = "cropnet",
    version: Annotated[str | None, typer.Option(help="Version to register (default: the next one).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, split, weights and batches.")] = 0,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    steps: Annotated[int, typer.Option(help="Batches per epoch.")] = 40,
    register: Annotated[bool, typer.Option(help="Register the trained version.")] = True,
) -> None:
    """Train a crop-type model (the `train` flow, run here) and register it."""
    if scenes is not None and labels is None:
        raise InvalidInput("--labels is required with a scenes folder")
    _quiet_prefect()
    from flows.train import train as train_flow

    outcome = train_flow(
        str(scenes) if scenes else None,
        str(labels) if labels else None,
        str(parcels) if parcels else None,
        name,
        version,
        seed,
        epochs,
        steps,
        register,
    )
    metrics = outcome.metrics
    table = Table("class", "precision", "recall", "F1", "pixels", title=f"{name}@{outcome.version} on held-out fields")
    for cls, values in metrics["per_class"].items():
        table.add_row(
            cls,
            f"{values['precision']:.3f}",
            f"{values['recall']:.3f}",
            f"{values['f1']:.3f}",
            f"{values['support_px']:,}",
        )
    console.print(table)
    console.print(
        f"overall accuracy {metrics['overall_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
        f"({metrics['validation_fields']} held-out fields); "
        + (f"[green]registered {name}@{outcome.version}[/]" if outcome.registered else "not registered")
    )


@models_app.command("list")
def models_list() -> None:
    """Registered model versions with their held-out metrics."""
    from models.registry import list_versions

    table = Table("model", "created", "overall accuracy", "macro F1", "checksum")
    for row in list_versions(_services().sessions):
        table.add_row(
            f"{row.name}@{row.version}",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            str(row.metrics.get("overall_accuracy", "-")),
            str(row.metrics.get("macro_f1", "-")),
            row.checksum_sha256[:12],
        )
    console.print(table)


@models_app.command("show")
def models_show(reference: Annotated[str, typer.Argument(help="name@version or name@latest")]) -> None:
    """A version's contract, metrics and training record."""
    import json

    from models.registry import resolve

    row = resolve(_services().sessions, reference)
    console.print_json(
        json.dumps(
            {
                "name": row.name,
                "version": row.version,
                "object_prefix": row.object_prefix,
                "checksum_sha256": row.checksum_sha256,
                "contract": row.contract,
                "metrics": row.metrics,
                "training": row.training,
                "description": row.description,
            },
            default=str,
        )
    )


@models_app.command("register")
def models_register(folder: Annotated[Path, typer.Argument(help="Folder with weights.pt and metadata.json.")]) -> None:
    """Register a version from a folder (as exported, or as shipped in models/default/)."""
    from models.registry import register_folder

    svc = _services()
    row = register_folder(svc.store, svc.sessions, folder)
    console.print(f"[green]registered[/] {row.name}@{row.version} ({row.checksum_sha256[:12]})")


@models_app.command("ensure-default")
def models_ensure_default() -> None:
    """Register the shipped default model unless it is registered already (safe to repeat)."""
    from models.registry import ensure_default_model

    svc = _services()
    row = ensure_default_model(svc.store, svc.sessions)
    console.print(f"[green]model ready[/] {row.name}@{row.version}")


@models_app.command("export")
def models_export(
    reference: Annotated[str, typer.Argument(help="name@version or name@latest")],
    folder: Annotated[Path, typer.Argument(help="Where to write weights.pt and metadata.json.")],
) -> None:
    """Copy a version's weights and metadata out of the store into a folder."""
    from models.registry import METADATA_FILE, WEIGHTS_FILE, resolve

    svc = _services()
    row = resolve(svc.sessions, reference)
    folder.mkdir(parents=True, exist_ok=True)
    for file in (WEIGHTS_FILE, METADATA_FILE):
        (folder / file).write_bytes(svc.store.get(f"{row.object_prefix}/{file}"))
    console.print(f"[green]exported[/] {row.name}@{row.version} to {folder}")


def _services() -> Any:
    from cropai.services import services

    return services(_settings())


def _quiet_prefect() -> None:
    """Prefect's console logging below warnings and its ephemeral API's shutdown chatter off."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    # The first ephemeral server of a fresh venv compiles and migrates; on 2 cores that took
    # longer than Prefect's 20 s default and `make demo` failed on a fresh clone.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the catalogue's migrations (SQLite or PostgreSQL)."""
    from cropai.db import current_revision, make_engine, masked_url, upgrade_database

    engine = make_engine(_settings())
    upgrade_database(engine, revision)
    console.print(f"[green]database at revision[/] {current_revision(engine)}: {masked_url(str(engine.url))}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    from cropai.db import check_database, current_revision, make_engine, masked_url

    engine = make_engine(_settings())
    check_database(engine)
    console.print(f"{masked_url(str(engine.url))}: revision {current_revision(engine) or 'none'}")


@store_app.command("init")
def store_init() -> None:
    """Create the store's folder or bucket if it does not exist yet."""
    from cropai.storage import S3Store, open_store

    store = open_store(_settings())
    if isinstance(store, S3Store):
        store.ensure_bucket()
    store.check()
    console.print(f"[green]store ready[/] {store.url}")


@store_app.command("ls")
def store_ls(prefix: Annotated[str, typer.Argument(help="Key prefix, e.g. scenes/.")] = "") -> None:
    """List the objects under a prefix with their sizes."""
    from cropai.storage import open_store

    for info in open_store(_settings()).list(prefix):
        console.print(f"{info.size_bytes:>14,}  {info.key}", highlight=False)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The account's email; it is the login name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the account an admin.")] = False,
    role: Annotated[str, typer.Option(help="admin, analyst or viewer (--admin is role admin).")] = "analyst",
    full_name: Annotated[str, typer.Option(help="The person's name.")] = "",
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="CROPAI_NEW_USER_PASSWORD",
            help="Asked for when not given (or set CROPAI_NEW_USER_PASSWORD).",
        ),
    ] = "",
) -> None:
    """Create an API account; `cropai users create you@example.org --admin` makes the first admin."""
    from pydantic import ValidationError

    from api.schemas import UserCreate
    from cropai.accounts import create_user

    try:
        request = UserCreate(email=email, password=password, full_name=full_name, role="admin" if admin else role)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"cannot create {email!r}: {problems}") from None
    svc = _services()
    from cropai.db import upgrade_database

    upgrade_database(svc.engine)
    user = create_user(svc.sessions, request.email, request.password, request.role, request.full_name)
    console.print(f"[green]created[/] {user.role.value} {user.email} (id {user.id})", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """The API's accounts with their roles."""
    from sqlalchemy import select

    from cropai.db import User

    table = Table("id", "email", "role", "active", "last login")
    with _services().sessions() as session:
        for user in session.scalars(select(User).order_by(User.id)):
            table.add_row(
                str(user.id),
                user.email,
                user.role.value,
                "yes" if user.is_active else "no",
                str(user.last_login_at or "-"),
            )
    console.print(table)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default CROPAI_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CROPAI_API_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (docs at /docs, admin at /admin)."""
    from cropai.db import upgrade_database

    settings = _settings()
    upgrade_database(_services().engine)
    host, port = host or settings.api_host, port or settings.api_port
    errors.print(f"Crop AI API on http://{host}:{port} (docs /docs, admin /admin)", highlight=False)
    # Replace this process with uvicorn: the server does not carry the CLI's imports.
    command = [sys.executable, "-m", "api.serve", "--host", host, "--port", str(port), "--workers", str(workers)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


@app.command()
def serve(
    limit: Annotated[
        int | None, typer.Option(min=1, help="Most flow runs at once (default CROPAI_FLOW_CONCURRENCY).")
    ] = None,
    schedules: Annotated[bool, typer.Option(help="Keep the ingestion's cron schedule active.")] = True,
) -> None:
    """Serve the deployments (analyze, ingest-scheduled, train) to the Prefect server in PREFECT_API_URL."""
    limit = limit or _settings().flow_concurrency
    _quiet_prefect()
    os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    from flows.serve import serve_deployments

    errors.print(
        f"serving deployments analyze/analyze, ingest_scenes/ingest-scheduled, train/train ({limit} flow runs at once)",
        highlight=False,
    )
    serve_deployments(limit=limit, schedule_ingest=schedules)


@app.command()
def up(
    workers: Annotated[
        int, typer.Option(min=0, help="Dask workers (default CROPAI_DASK_WORKERS, else one per core).")
    ] = 0,
    api_port: Annotated[int | None, typer.Option(help="API port (default CROPAI_API_PORT).")] = None,
    prefect_port: Annotated[int, typer.Option(help="Prefect server (API and UI) port.")] = 4200,
    scheduler_port: Annotated[int, typer.Option(help="Dask scheduler port.")] = 8786,
    dashboard_port: Annotated[int, typer.Option(help="Dask dashboard port.")] = 8787,
    schedules: Annotated[bool, typer.Option(help="Keep the ingestion's cron schedule active.")] = True,
) -> None:
    """Run the whole stack on this machine until Ctrl-C: a Prefect server (SQLite), a Dask
    scheduler and workers, the deployment server and the API, on loopback."""
    from cropai.db import masked_url
    from cropai.stack import Ports, Stack, StackError, start_stack

    settings = _settings()
    if settings.environment == "dev":
        _warn_dev_mode(settings)
    ports = Ports(prefect_port, api_port or settings.api_port, scheduler_port, dashboard_port)
    if busy := ports.taken():
        raise InvalidInput(
            f"already in use on 127.0.0.1: {', '.join(busy)}; stop what listens there or pick "
            "another port with that option"
        )
    model = _prepare_catalogue()
    console.print(f"catalogue migrated, store ready, model {model.name}@{model.version} registered", highlight=False)
    count = workers or settings.dask_workers or os.cpu_count() or 1
    logs = settings.home / "logs"
    console.print(f"starting Crop AI on 127.0.0.1 ({count} Dask worker(s)); logs in {logs}", highlight=False)
    try:
        # The stack turns Ctrl-C, SIGTERM (systemd, docker stop, kill) and SIGHUP into an
        # orderly stop of every program; a second one kills them all at once.
        with Stack(logs, report=lambda line: console.print(line, highlight=False)) as stack:
            start_stack(stack, settings, ports, count, schedules)
            console.print(
                f"\n[green]Crop AI is up[/]\n  map viewer      {ports.api_url}/app/\n"
                f"  Prefect UI      http://127.0.0.1:{ports.prefect}\n"
                f"  API docs        {ports.api_url}/docs\n  admin panel     {ports.api_url}/admin\n"
                f"  Dask scheduler  {ports.scheduler_address}\n"
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


def _prepare_catalogue() -> Any:
    """Migrate the catalogue, create the store's bucket or folder, register the shipped model
    (what the compose file's one-shot `migrate` service does); returns the model version."""
    from cropai.db import upgrade_database
    from cropai.storage import S3Store
    from models.registry import ensure_default_model

    svc = _services()
    upgrade_database(svc.engine)
    if isinstance(svc.store, S3Store):
        svc.store.ensure_bucket()
    svc.store.check()
    return ensure_default_model(svc.store, svc.sessions)


def _has_accounts() -> bool:
    from sqlalchemy import exists, select

    from cropai.db import User

    with _services().sessions() as session:
        return bool(session.scalar(select(exists().select_from(User))))


@app.command()
def check() -> None:
    """Show the effective settings and check that the database and the store answer."""
    from cropai.db import check_database, make_engine, masked_url
    from cropai.storage import open_store

    settings = _settings()
    table = Table("component", "where", "status")
    engine = make_engine(settings)
    store = open_store(settings)
    failures = 0
    for name, where, probe in (
        ("database", masked_url(str(engine.url)), lambda: check_database(engine)),
        ("store", store.url, store.check),
    ):
        try:
            probe()
            table.add_row(name, where, "[green]ok[/]")
        except CropAIError as exc:
            failures += 1
            table.add_row(name, where, f"[red]{exc}[/]")
    table.add_row("dask", settings.dask_address or "local cluster (started per run)", "-")
    table.add_row("environment", settings.environment, "-")
    console.print(table)
    if failures:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=errors)])
    logging.getLogger("cropai").setLevel(logging.INFO)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # cluster start/stop chatter
    try:
        app()
    except CropAIError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # `python -m cropai.cli`, how the stack starts `cropai serve`
    main()
