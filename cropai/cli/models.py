"""`cropai train` and the `cropai models` group: the registry of model versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from cropai.cli.common import console, parse_date, quiet_prefect, ready_catalogue
from cropai.errors import InvalidInput
from cropai.training_season import ParcelTraining
from models.versions import list_versions, model_card, resolve

# The registry and the train flow load torch (and Prefect): each command that needs one
# imports it itself, so that the others start without them.

if TYPE_CHECKING:
    from models.train import TrainOutcome

models_app = typer.Typer(help="The registry of model versions.", no_args_is_help=True)


def train(
    scenes: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of scenes: ingested first with --fields, read directly with --labels; "
            "empty: the catalogue's scenes with --fields, else the default synthetic training set."
        ),
    ] = None,
    fields: Annotated[
        Path | None,
        typer.Option(help="Labelled parcels: GeoPackage, GeoParquet, Shapefile, GeoJSON or FlatGeobuf, any CRS."),
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="The parcels' property holding the crop code.")] = None,
    legend: Annotated[
        Path | None, typer.Option(help="CSV mapping codes to classes (code,class[,id][,colour]; class 'ignore').")
    ] = None,
    season: Annotated[
        str | None, typer.Option(help="Season as START/END dates, e.g. 2018-10-01/2019-07-31 (may cross the year).")
    ] = None,
    bin_length: Annotated[str, typer.Option(help="Time bins: month, 15d or 10d.")] = "month",
    inner_buffer: Annotated[float, typer.Option(help="Shrink parcels by this many metres (mixed edges).")] = 0.0,
    min_fields: Annotated[int, typer.Option(help="Fewest parcels a class may have.")] = 2,
    merge_rare: Annotated[bool, typer.Option(help="Merge classes below --min-fields into 'other'.")] = False,
    family: Annotated[str, typer.Option(help="cropnet (from scratch) or presto (pretrained encoder).")] = "cropnet",
    labels: Annotated[Path | None, typer.Option(help="Label raster on the scenes' grid (instead of --fields).")] = None,
    parcels: Annotated[Path | None, typer.Option(help="Field parcels (GeoJSON) to split --labels by.")] = None,
    name: Annotated[str, typer.Option(help="Model name.")] = "cropnet",
    version: Annotated[str | None, typer.Option(help="Version to register (default: the next one).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, split, weights and batches.")] = 0,
    epochs: Annotated[int, typer.Option(help="Training epochs (at most: early stopping may end sooner).")] = 40,
    steps: Annotated[int, typer.Option(help="Batches per epoch.")] = 40,
    register: Annotated[bool, typer.Option(help="Register the trained version.")] = True,
) -> None:
    """Train a crop-type model (the `train` flow, run here) and register it.

    With --fields: from labelled parcels and the catalogue's scenes of the season."""
    request = _parcel_training(fields, label_column, legend, season, bin_length, inner_buffer, min_fields, merge_rare)
    if request is None and scenes is not None and labels is None:
        raise InvalidInput("a scenes folder needs --fields (labelled parcels) or --labels (a label raster)")
    if family not in ("cropnet", "presto"):
        raise InvalidInput(f"--family {family!r}: expected cropnet or presto")
    ready_catalogue()
    if request is not None and scenes is not None:
        from cropai.cli.scenes import run_ingest

        run_ingest(str(scenes))
    quiet_prefect()
    from flows.train import train as train_flow

    outcome = train_flow(
        str(scenes) if scenes and request is None else None,
        str(labels) if labels else None,
        str(parcels) if parcels else None,
        name,
        version,
        seed,
        epochs,
        steps,
        register,
        parcels=request,
        family=family,
    )
    print_outcome(name, outcome)


def _parcel_training(
    fields: Path | None,
    label_column: str | None,
    legend: Path | None,
    season: str | None,
    bin_length: str,
    inner_buffer: float,
    min_fields: int,
    merge_rare: bool,
) -> ParcelTraining | None:
    """The --fields options as a training request; None without --fields."""
    if fields is None:
        return None
    if not label_column:
        raise InvalidInput("--fields needs --label-column: the parcels' property that holds each crop code")
    if not season or "/" not in season:
        raise InvalidInput("--fields needs --season START/END, e.g. 2019-03-01/2019-10-31")
    start, _, end = season.partition("/")
    try:
        return ParcelTraining(
            fields_path=str(fields),
            label_column=label_column,
            legend_path=str(legend) if legend else None,
            start=parse_date("--season start", start),
            end=parse_date("--season end", end),
            bin_length=bin_length,
            inner_buffer_m=inner_buffer,
            min_fields=min_fields,
            merge_rare=merge_rare,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise InvalidInput(f"--{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}") from None


def print_outcome(name: str, outcome: TrainOutcome) -> None:
    """Per-class scores beside the baseline's, and the headline figures."""
    metrics = outcome.metrics
    baseline = metrics["baseline"]
    table = Table(
        "class",
        "fields",
        "precision",
        "recall",
        "F1",
        "baseline F1",
        "pixels",
        title=f"{name}@{outcome.version} on held-out fields",
    )
    for cls, values in metrics["per_class"].items():
        table.add_row(
            cls,
            str(metrics["fields_per_class"].get(cls, "-")),
            f"{values['precision']:.3f}",
            f"{values['recall']:.3f}",
            f"{values['f1']:.3f}",
            f"{baseline['per_class'][cls]['f1']:.3f}" if cls in baseline["per_class"] else "-",
            f"{values['support_px']:,}",
        )
    console.print(table)
    console.print(
        f"overall accuracy {metrics['overall_accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f} "
        f"({metrics['validation_fields']} held-out fields); baseline (logistic regression on the composites) "
        f"{baseline['overall_accuracy']:.3f}, {baseline['macro_f1']:.3f}; "
        + (f"[green]registered {name}@{outcome.version}[/]" if outcome.registered else "not registered")
    )


@models_app.command("list")
def models_list() -> None:
    """Registered model versions with their held-out metrics."""
    table = Table("model", "created", "overall accuracy", "macro F1", "checksum")
    for row in list_versions(ready_catalogue().sessions):
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
    row = resolve(ready_catalogue().sessions, reference)
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
                "card": model_card(row),
            },
            default=str,
        )
    )


@models_app.command("register")
def models_register(folder: Annotated[Path, typer.Argument(help="Folder with weights.pt and metadata.json.")]) -> None:
    """Register a version from a folder (as exported, or as shipped in models/default/)."""
    from models.registry import register_folder

    svc = ready_catalogue()
    row = register_folder(svc.store, svc.sessions, folder)
    console.print(f"[green]registered[/] {row.name}@{row.version} ({row.checksum_sha256[:12]})")


@models_app.command("ensure-default")
def models_ensure_default() -> None:
    """Register the shipped default model unless it is registered already (safe to repeat)."""
    from models.registry import ensure_default_model

    svc = ready_catalogue()
    row = ensure_default_model(svc.store, svc.sessions)
    console.print(f"[green]model ready[/] {row.name}@{row.version}")


@models_app.command("export")
def models_export(
    reference: Annotated[str, typer.Argument(help="name@version or name@latest")],
    folder: Annotated[Path, typer.Argument(help="Where to write weights.pt and metadata.json.")],
) -> None:
    """Copy a version's weights and metadata out of the store into a folder."""
    from models.registry import METADATA_FILE, WEIGHTS_FILE

    svc = ready_catalogue()
    row = resolve(svc.sessions, reference)
    folder.mkdir(parents=True, exist_ok=True)
    for file in (WEIGHTS_FILE, METADATA_FILE):
        (folder / file).write_bytes(svc.store.get(f"{row.object_prefix}/{file}"))
    console.print(f"[green]exported[/] {row.name}@{row.version} to {folder}")
