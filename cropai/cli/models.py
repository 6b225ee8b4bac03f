"""`cropai train` and the `cropai models` group: the registry of model versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cropai.cli.common import console, quiet_prefect, ready_catalogue
from cropai.errors import InvalidInput
from models.versions import list_versions, resolve

# The registry and the train flow load torch (and Prefect): each command that needs one
# imports it itself, so that the others start without them.

models_app = typer.Typer(help="The registry of model versions.", no_args_is_help=True)


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
    ready_catalogue()
    quiet_prefect()
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
