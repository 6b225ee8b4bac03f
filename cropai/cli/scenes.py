"""`cropai synth` and `cropai ingest`: scenes made up or brought in."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import select

from cropai.cli.common import (
    console,
    errors,
    parse_bbox,
    parse_date,
    progress_bar,
    quiet_prefect,
    ready_catalogue,
)
from cropai.config import load_settings
from cropai.db import IngestRun, utcnow
from cropai.errors import InvalidInput

# The raster stack (rasterio, pystac, zarr: seconds to import), Prefect and the flows load
# inside the commands that use them, so that every other `cropai` command starts quickly.
if TYPE_CHECKING:
    from cropai.ingest import IngestSummary
    from cropai.sources import StacSearch
    from cropai.synth import SyntheticSet, SynthSpec

# A small area of arable land in the Beauce (France), about 3 km x 3.3 km: the demo's default.
DEMO_BBOX = "1.60,48.20,1.64,48.23"
DEMO_START = "2025-03-01"
DEMO_END = "2025-10-31"


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
        bbox_wgs84=parse_bbox(bbox),
        start=parse_date("--start", start),
        end=parse_date("--end", end),
        seed=seed,
        revisit_days=revisit_days,
        mean_cloud_cover=cloud_cover,
        file_format=file_format,  # type: ignore[arg-type]  # validated by the spec
    )
    write_synthetic_set(spec, out or load_settings().home / "synthetic")


def write_synthetic_set(spec: SynthSpec, out_dir: Path) -> SyntheticSet:
    """Synthesise ``spec`` into ``out_dir`` behind a progress bar and say what was written."""
    from cropai.synth import acquisition_times, synthesize

    spec.validate()
    with progress_bar() as progress:
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
    radiometric_offset: Annotated[
        int,
        typer.Option(
            help="Offset in digital numbers that GeoTIFF stacks without radiometry tags carry, e.g. -1000 for "
            "ESA L2A at processing baseline 04.00 or later (SAFE products and STAC items say it themselves).",
            min=-10_000,
            max=10_000,
        ),
    ] = 0,
) -> None:
    """Ingest scenes into the store and the catalogue (the `ingest_scenes` flow, run here)."""
    from cropai.sources import StacSearch

    search = None
    if stac_api or any(v is not None for v in (bbox, start, end, max_cloud)):
        try:
            search = StacSearch(
                collections=[collection],
                bbox=parse_bbox(bbox) if bbox else None,
                start=parse_date("--start", start) if start else None,
                end=parse_date("--end", end) if end else None,
                max_cloud_cover=max_cloud,
                max_items=max_items,
            )
        except ValidationError as exc:  # --max-cloud or --max-items out of range
            problem = exc.errors()[0]
            raise InvalidInput(f"STAC search {problem['loc'][0]}: {problem['msg']}") from None
    mapping = None
    if band_mapping:
        mapping = [None if name.strip() in ("-", "") else name.strip() for name in band_mapping.split(",")]
    run_ingest(source, search, mapping, radiometric_offset)


def run_ingest(
    source: str,
    search: StacSearch | None = None,
    mapping: list[str | None] | None = None,
    radiometric_offset: int = 0,
) -> IngestSummary:
    """Run the ingest flow here, behind a progress bar, and print its counts; exit 1 if it fails."""
    svc = ready_catalogue()
    quiet_prefect()
    from cropai.ingest import IngestSummary
    from flows.ingest import ingest_scenes

    # SQLite hands times back naive: the run's start is compared the same way.
    began = utcnow().replace(tzinfo=None) if svc.engine.dialect.name == "sqlite" else utcnow()
    # The flow runs in a thread while the bar follows its ingest_runs row.
    with ThreadPoolExecutor(1) as pool, progress_bar() as progress:
        bar = progress.add_task(f"ingest {source}", total=None)
        running = pool.submit(lambda: ingest_scenes(source, search, mapping, radiometric_offset, return_state=True))
        while not running.done():
            with svc.sessions() as session:
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
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, IngestSummary):
        errors.print(f"[red]ingest failed:[/] {state.message}", soft_wrap=True)
        raise typer.Exit(1)
    console.print(
        f"[green]ingest run {summary.ingest_run_id}:[/] {summary.found} found, "
        f"{summary.ingested} ingested, {summary.skipped} skipped as duplicates, "
        f"{summary.rejected} rejected"
    )
    return summary
