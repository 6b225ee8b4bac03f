"""`cropai analyze` and `cropai demo`: crop maps of an area over a season."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from cropai.analysis_records import create_analysis
from cropai.cli.common import (
    console,
    errors,
    parse_bbox,
    parse_date,
    prepare_catalogue,
    quiet_prefect,
    ready_catalogue,
)
from cropai.cli.scenes import DEMO_BBOX, DEMO_END, DEMO_START, run_ingest, write_synthetic_set
from cropai.config import load_settings
from cropai.db import FieldParcel, FieldPrediction
from cropai.errors import InvalidInput
from cropai.fields import add_fields
from cropai.request_limits import checked_request
from cropai.services import services
from models.versions import ModelRef

# The raster stack (rasterio, zarr: seconds to import), Prefect and the flows load inside
# the commands that use them, so that every other `cropai` command starts quickly.
if TYPE_CHECKING:
    from cropai.cropmap import AnalysisSummary
    from cropai.synth import SyntheticSet

# The demo analysis covers the synthetic area (a hair inside it, clear of its edge).
DEMO_AOI = {
    "type": "Polygon",
    "coordinates": [[[1.601, 48.201], [1.639, 48.201], [1.639, 48.229], [1.601, 48.229], [1.601, 48.201]]],
}


def analyze(
    aoi: Annotated[Path, typer.Option(help="Area of interest: a GeoJSON Polygon, Feature or one-feature collection.")],
    start: Annotated[str, typer.Option(help="First day of the season, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day of the season, YYYY-MM-DD.")],
    model: Annotated[str, typer.Option(help="Model version, name@version or name@latest.")] = "cropnet@latest",
    max_cloud: Annotated[float | None, typer.Option(help="Skip scenes cloudier than this fraction, 0..1.")] = None,
    name: Annotated[str, typer.Option(help="A name for the analysis.")] = "",
) -> None:
    """Map the crops of an AOI over a season (the `analyze` flow, run here on a local Dask cluster)."""
    try:
        geojson = json.loads(aoi.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"--aoi {aoi}: expected a readable GeoJSON file ({exc})") from None
    options = {} if max_cloud is None else {"max_cloud_fraction": max_cloud}
    run_analysis(geojson, parse_date("--start", start), parse_date("--end", end), model, name, options)


def run_analysis(
    aoi: dict[str, Any], start: date, end: date, model: str, name: str = "", options: dict[str, Any] | None = None
) -> AnalysisSummary:
    """Queue an analysis and run the analyze flow on it here; print its crops, exit 1 if it fails."""
    ModelRef.parse(model)
    aoi = checked_request(load_settings(), aoi, start, end)  # the limits the API applies
    sessions = ready_catalogue().sessions
    analysis_id = create_analysis(sessions, aoi, start, end, model, name=name, options=options)
    console.print(f"analysis {analysis_id}: {start} to {end} with {model}")
    quiet_prefect()
    from cropai.cropmap import AnalysisSummary
    from flows.analyze import analyze as analyze_flow

    with console.status("planning, predicting on the local Dask cluster, writing the map ..."):
        state = analyze_flow(str(analysis_id), return_state=True)
    summary = state.result() if state.is_completed() else None
    if not isinstance(summary, AnalysisSummary):
        errors.print(f"[red]analysis {analysis_id} failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    table = Table("class", "pixels", "hectares", "low-evidence ha", title=f"crops of analysis {analysis_id}")
    for area in summary.classes:
        table.add_row(area.class_name, f"{area.pixel_count:,}", f"{area.area_ha:,.2f}", f"{area.low_evidence_ha:,.2f}")
    console.print(table)
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    console.print(
        f"[green]crop map[/]  {summary.map}\n[green]quicklook[/] {summary.quicklook}\n"
        f"{summary.fields} field(s) predicted, {summary.insufficient_fields} with insufficient evidence"
    )
    return summary


def demo() -> None:
    """Run Crop AI end to end on the embedded defaults: migrate the catalogue, prepare the
    store, register the shipped model, synthesise a season of scenes over a farming area,
    ingest them, upload its field parcels and map its crops."""
    from cropai.synth import SynthSpec

    settings = load_settings()
    model = prepare_catalogue()
    spec = SynthSpec(parse_bbox(DEMO_BBOX), date.fromisoformat(DEMO_START), date.fromisoformat(DEMO_END))
    console.print(
        f"[green]model[/] {model.name}@{model.version} (macro F1 {model.metrics.get('macro_f1')} "
        "on held-out synthetic fields)"
    )
    made = write_synthetic_set(spec, settings.home / "synthetic")
    run_ingest(str(made.root / "scenes"))
    fields = _demo_fields(made)
    summary = run_analysis(DEMO_AOI, date(2025, 4, 1), date(2025, 9, 30), "cropnet@latest", "demo")
    _report_field_accuracy(summary.analysis_id, fields)
    store = services().store
    console.print(f"[green]catalogue[/] {settings.resolved_database_url}\n[green]store[/] {store.url}")


def _demo_fields(made: SyntheticSet) -> dict[int, str]:
    """The synthetic crop parcels as fields (no owner), so the demo predicts a crop per field."""
    sessions = services().sessions
    with sessions() as session:  # a second demo reuses the fields of the first
        known = {
            row.external_id: row.id
            for row in session.scalars(select(FieldParcel).where(FieldParcel.owner_id.is_(None)))
            if row.external_id is not None
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


def _report_field_accuracy(analysis_id: uuid.UUID, truth: dict[int, str]) -> None:
    with services().sessions() as session:
        predictions = session.scalars(select(FieldPrediction).where(FieldPrediction.analysis_id == analysis_id)).all()
    scored = [p for p in predictions if p.field_id in truth]
    right = sum(p.class_name == truth[p.field_id] for p in scored)
    console.print(f"fields predicted right (against the synthetic truth): {right} of {len(scored)}")
