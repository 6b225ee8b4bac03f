"""The ``ingest_scenes`` flow: bring the scenes of a source into the store and the catalogue."""

from __future__ import annotations

from prefect import flow, runtime
from prefect.client.schemas.objects import State
from prefect.logging import get_run_logger
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from cropai.config import Settings, load_settings
from cropai.db import IngestRun
from cropai.heartbeat import heartbeat, heartbeat_interval_s
from cropai.ingest import FileHints, IngestOutcome, IngestSummary
from cropai.services import services
from cropai.source_bounds import SourceBounds
from cropai.sources import SceneCandidate, StacSearch
from flows.reasons import failure_reason
from tasks.ingest import close_ingest_run, discover_scenes, ingest_scene, open_ingest_run


@flow(name="ingest_scenes", log_prints=False)
def ingest_scenes(
    source: str,
    search: StacSearch | None = None,
    band_mapping: list[str | None] | None = None,
    radiometric_offset: int = 0,
) -> IngestSummary | State:
    """Ingest every scene of a source into the object store and the catalogue.

    Bad scenes are quarantined with their reason and the run still completes; it
    fails only when the source cannot be listed or scenes could not be stored after
    retries. A run of a deployment reads only inside CROPAI_INGEST_ROOTS and the
    store's inbox; every run reads only http(s) hosts with public addresses
    (CROPAI_STAC_ALLOW_PRIVATE adds loopback and private networks).

    Args:
        source: a folder or one file; `store:PREFIX` for an inbox prefix of the object
            store (e.g. `store:inbox/`); a STAC catalog (path or URL ending in .json);
            or, with a search, the URL of a STAC API.
        search: the STAC API search (collections, bbox, dates, max cloud cover).
        band_mapping: names of a file's bands in order when the file does not describe
            them, e.g. B02, B03, B04, B05, B06, B07, B08, B8A, B11, B12, SCL (empty to skip one).
        radiometric_offset: the offset in digital numbers of GeoTIFF stacks whose tags do not say
            it, e.g. -1000 for ESA L2A at baseline 04.00 or later (SAFE products and STAC items say it).
    """
    run_id = open_ingest_run(source)
    settings = load_settings()
    with heartbeat(services(settings).sessions, IngestRun, run_id, heartbeat_interval_s(settings)):
        hints = FileHints(band_mapping, radiometric_offset)
        return _ingest(source, search, hints, run_id, _bounds_of_this_run(settings))


def _bounds_of_this_run(settings: Settings) -> SourceBounds:
    """A run of a deployment (started by the API, the schedule or the Prefect UI) reads only
    within the configured roots; a direct call (``cropai ingest``, run by the operator on
    their own machine) reads any local path the operator gives."""
    if runtime.deployment.id is not None:
        return SourceBounds.for_server(settings)
    return SourceBounds.for_operator(settings)


def _ingest(
    source: str, search: StacSearch | None, hints: FileHints, run_id: int, bounds: SourceBounds
) -> IngestSummary | State:
    logger = get_run_logger()
    discovered = discover_scenes(source, search, run_id, bounds, return_state=True)
    if discovered.is_failed():
        reason = failure_reason(discovered)
        close_ingest_run(run_id, [], reason)
        return Failed(message=f"cannot read source {source}: {reason}")
    candidates = discovered.result()  # each carries the run's bounds on to its ingestion
    states = _ingest_each(candidates, run_id, hints)
    outcomes = [state.result() for state in states if state.is_completed()]
    errors = [f"{c.name}: {failure_reason(s)}" for c, s in zip(candidates, states, strict=True) if not s.is_completed()]
    error = f"{len(errors)} scene(s) could not be stored: {'; '.join(errors)}" if errors else None
    summary = close_ingest_run(run_id, outcomes, error)
    logger.info(
        "ingest run %s: %s found, %s ingested, %s skipped as duplicates, %s rejected",
        run_id,
        summary.found,
        summary.ingested,
        summary.skipped,
        summary.rejected,
    )
    if error:
        return Failed(message=error, data=summary)
    return summary


def _ingest_each(candidates: list[SceneCandidate], run_id: int, hints: FileHints) -> list[State[IngestOutcome]]:
    """Run ``ingest_scene`` for every candidate and wait for all; their final states, in order.

    Scenes run in parallel threads (GDAL and hashing release the GIL), as many as the setting allows."""
    runner: ThreadPoolTaskRunner[IngestOutcome] = ThreadPoolTaskRunner(max_workers=load_settings().ingest_concurrency)
    with runner:
        futures = [runner.submit(ingest_scene, {"candidate": c, "run_id": run_id, "hints": hints}) for c in candidates]
        for future in futures:
            future.wait()
    return [future.state for future in futures]
