"""The `cropai assess` group: how far to trust a completed analysis' map."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cropai.analysis_records import model_legend
from cropai.assessment import assess_analysis, import_sample_labels
from cropai.cli.common import console, ready_catalogue
from cropai.db import Analysis, AnalysisStatus
from cropai.errors import InvalidInput
from cropai.sample_design import DEFAULT_MINIMUM, DEFAULT_TARGET_SE, design_for_map

assess_app = typer.Typer(help="Assess a crop map's accuracy and areas.", no_args_is_help=True)


@assess_app.command("design")
def assess_design(
    analysis_id: Annotated[str, typer.Argument(help="A completed analysis.")],
    out: Annotated[Path, typer.Option(help="Folder for sample.geojson and sample.csv.")] = Path("."),
    target_se: Annotated[float, typer.Option(help="Target standard error of overall accuracy.")] = DEFAULT_TARGET_SE,
    minimum: Annotated[int, typer.Option(help="Points of each map class at least.")] = DEFAULT_MINIMUM,
    seed: Annotated[int, typer.Option(help="The same seed draws the same points.")] = 0,
) -> None:
    """Draw a stratified random sample of the map to label (Olofsson et al. 2014, section 5.1)."""
    svc = ready_catalogue()
    key = _analysis_key(analysis_id)
    with svc.sessions() as session:
        analysis = session.get(Analysis, key)
        if analysis is None or analysis.status != AnalysisStatus.completed or analysis.map_key is None:
            raise InvalidInput(f"analysis {analysis_id} is not a completed analysis with a map")
        legend = model_legend(session, analysis.model_version_id)
        map_key = analysis.map_key
    design = design_for_map(
        svc.store, map_key, legend, target_overall_se=target_se, minimum_per_class=minimum, seed=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample.geojson").write_text(json.dumps(design.as_geojson()))
    (out / "sample.csv").write_text(design.as_csv())
    per_class = ", ".join(f"{name} {count}" for name, count in design.points_per_class.items())
    console.print(f"[green]{len(design.points)} points[/] ({per_class}) in {out}/sample.geojson and sample.csv")


@assess_app.command("labels")
def assess_labels(
    analysis_id: Annotated[str, typer.Argument(help="The analysis the sample design was drawn from.")],
    file: Annotated[Path, typer.Argument(help="sample.csv or sample.geojson with the label column filled in.")],
) -> None:
    """Store the labelled points of a sample design (a label is a class name or code of the
    model's legend), in place of any earlier ones."""
    svc = ready_catalogue()
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from None
    points = import_sample_labels(svc.sessions, svc.store, _analysis_key(analysis_id), content)
    console.print(f"[green]{len(points)} labelled points[/] stored for analysis {analysis_id}")


@assess_app.command("run")
def assess_run(analysis_id: Annotated[str, typer.Argument(help="A completed analysis.")]) -> None:
    """Assess the map against its labelled sample, else the owner's reference fields in the AOI."""
    svc = ready_catalogue()
    result = assess_analysis(svc.sessions, svc.store, _analysis_key(analysis_id))
    overall = result["overall_accuracy"]
    table = Table(
        "class",
        "mapped ha",
        "estimated ha (95 % CI)",
        "user's accuracy",
        "producer's accuracy",
        "F1",
        title=f"analysis {analysis_id}: overall accuracy {_shown(overall)} from {result['sample_size']:,} "
        f"reference {result['unit']}",
    )
    for row in result["per_class"]:
        table.add_row(
            row["name"],
            f"{row['mapped_area_ha']:,.1f}",
            _shown(row["estimated_area_ha"], 1),
            _shown(row["users_accuracy"]),
            _shown(row["producers_accuracy"]),
            "n/a" if row["f1"] is None else f"{row['f1']:.3f}",
        )
    console.print(table)
    if result["fields"] is not None:
        console.print(f"{result['fields']['agreeing']} of {result['fields']['assessed']} reference fields agree")
    console.print(result["note"])


def _shown(estimate: dict[str, Any] | None, digits: int = 3) -> str:
    if estimate is None:
        return "n/a"
    low, high = estimate["ci95"]
    return f"{estimate['value']:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


def _analysis_key(analysis_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(analysis_id)
    except ValueError:
        raise InvalidInput(f"analysis id {analysis_id!r} is not a UUID") from None
