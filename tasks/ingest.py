"""Ingestion tasks: list a source, ingest one scene, open and close the run record."""

from __future__ import annotations

from typing import Any

import httpx
from prefect import Task, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import get_run_context
from prefect.logging import get_run_logger
from sqlalchemy.exc import DBAPIError

from cropai.db import is_unreachable
from cropai.errors import ServiceUnavailable
from cropai.ingest import FileHints, IngestOutcome, IngestSummary, finish_run, ingest_candidate, set_found, start_run
from cropai.services import services
from cropai.source_bounds import SourceBounds
from cropai.sources import SceneCandidate, StacSearch, discover

# Transient failures worth another try; anything else (a bug, a bad setting) fails at once.
TRANSIENT_ERRORS = (OSError, ServiceUnavailable, httpx.TransportError, httpx.HTTPStatusError)


def _is_transient(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Whether a failed try is worth another: the retry condition of the tasks that reach out."""
    try:
        state.result()
    except TRANSIENT_ERRORS:
        return True
    except DBAPIError as exc:  # the catalogue away for a moment, not a refused statement
        return is_unreachable(exc)
    except Exception:
        return False
    return False


@task(cache_policy=NO_CACHE)
def open_ingest_run(source: str) -> int:
    """Create the ingest_runs row that this flow run fills in."""
    flow_run = getattr(get_run_context(), "task_run", None)
    flow_run_id = getattr(flow_run, "flow_run_id", None)
    return start_run(services().sessions, source, flow_run_id)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_is_transient)
def discover_scenes(source: str, search: StacSearch | None, run_id: int, bounds: SourceBounds) -> list[SceneCandidate]:
    """List the scenes of a source within the run's bounds; a source that cannot be listed, or
    that leads outside the bounds, fails the flow."""
    svc = services()
    candidates = discover(source, svc.store, search, bounds)
    set_found(svc.sessions, run_id, len(candidates))
    get_run_logger().info("found %d scene(s) in %s", len(candidates), source)
    return candidates


@task(
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=_is_transient,
    task_run_name="ingest {candidate.name}",
)
def ingest_scene(candidate: SceneCandidate, run_id: int, hints: FileHints) -> IngestOutcome:
    """Validate, convert to COG, upload and catalogue one scene (or quarantine it)."""
    svc = services()
    outcome = ingest_candidate(candidate, svc.store, svc.sessions, run_id, hints.band_mapping, hints.radiometric_offset)
    logger = get_run_logger()
    if outcome.status == "rejected":
        logger.warning("rejected %s: %s", candidate.source_uri, outcome.reason)
    else:
        logger.info("%s %s as %s v%s", outcome.status, candidate.name, outcome.scene_id, outcome.version)
    return outcome


@task(cache_policy=NO_CACHE)
def close_ingest_run(run_id: int, outcomes: list[IngestOutcome], error: str | None) -> IngestSummary:
    """Final counts into ingest_runs and a table artifact operators read in the UI."""
    run = finish_run(services().sessions, run_id, outcomes, error)
    summary = IngestSummary.of(run)
    rows: list[dict[str, Any]] = [
        {"figure": name, "value": getattr(summary, name)} for name in ("found", "ingested", "skipped", "rejected")
    ]
    rows += [{"figure": f"rejected: {r['file']}", "value": r["reason"]} for r in run.rejections]
    if error:
        rows.append({"figure": "error", "value": error})
    create_table_artifact(
        rows,
        key="ingest-summary",
        description=f"Ingest run {run.id} of `{run.source}`: {run.ingested} ingested, "
        f"{run.skipped} duplicates skipped, {run.rejected} rejected",
    )
    return summary
