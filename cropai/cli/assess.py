"""The `cropai assess` group: how far to trust a completed analysis' map."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer

from cropai.cli.common import console, ready_catalogue
from cropai.crops import SYNTHETIC_LEGEND
from cropai.db import Analysis, AnalysisStatus, ModelVersion
from cropai.errors import InvalidInput
from cropai.legend import Legend
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
    try:
        key = uuid.UUID(analysis_id)
    except ValueError:
        raise InvalidInput(f"analysis id {analysis_id!r} is not a UUID") from None
    with svc.sessions() as session:
        analysis = session.get(Analysis, key)
        if analysis is None or analysis.status != AnalysisStatus.completed or analysis.map_key is None:
            raise InvalidInput(f"analysis {analysis_id} is not a completed analysis with a map")
        version = session.get(ModelVersion, analysis.model_version_id) if analysis.model_version_id else None
        legend = Legend.of_contract(version.contract) if version else SYNTHETIC_LEGEND
        map_key = analysis.map_key
    design = design_for_map(
        svc.store, map_key, legend, target_overall_se=target_se, minimum_per_class=minimum, seed=seed
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "sample.geojson").write_text(json.dumps(design.as_geojson()))
    (out / "sample.csv").write_text(design.as_csv())
    per_class = ", ".join(f"{name} {count}" for name, count in design.points_per_class.items())
    console.print(f"[green]{len(design.points)} points[/] ({per_class}) in {out}/sample.geojson and sample.csv")
