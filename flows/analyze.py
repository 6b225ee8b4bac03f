"""The ``analyze`` flow: map the crops of one Analysis request."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import cast

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Failed, State
from prefect_dask.task_runners import DaskTaskRunner

from cropai.analysis_runs import claim
from cropai.cluster import dask_cluster, worker_memory
from cropai.config import Settings, load_settings
from cropai.cropmap import AnalysisSummary
from cropai.db import Analysis
from cropai.heartbeat import heartbeat, heartbeat_interval_s
from cropai.services import services
from tasks.analyze import (
    finalise_analysis,
    mark_cancelled,
    mark_completed,
    mark_failed,
    plan_analysis,
    predict_batch,
    record_batch_done,
)
from tasks.assess import assess_map


@flow(
    name="analyze",
    on_completion=[mark_completed],
    on_failure=[mark_failed],
    on_crashed=[mark_failed],
    on_cancellation=[mark_cancelled],
)
def analyze(analysis_id: str, attempt: int = 1) -> AnalysisSummary | State:
    """Map the crops of an analysis: plan tiles, predict batches on Dask, write the map and statistics.

    Args:
        analysis_id: the id of a queued Analysis row (AOI, date window, model, options).
        attempt: which start of the analysis this run is for (a rerun in place adds one).
    """
    settings = load_settings()
    sessions = services(settings).sessions
    parsed_id = uuid.UUID(analysis_id)  # the deployment's parameter is text: parsed here, once
    flow_run_id = uuid.UUID(flow_run.get_id())
    if not claim(sessions, parsed_id, attempt, flow_run_id, retried=flow_run.get_run_count() > 1):
        return Cancelled(
            message=f"analysis {analysis_id} is not queued for attempt {attempt} (finished, cancelled "
            "or started again since): nothing to do"
        )
    with heartbeat(sessions, Analysis, parsed_id, heartbeat_interval_s(settings)):
        return _map_crops(parsed_id, settings)


def _map_crops(analysis_id: uuid.UUID, settings: Settings) -> AnalysisSummary | State:
    logger = get_run_logger()
    failures, reused, input_moments = [], 0, []
    with dask_cluster(settings, worker_env=_prefect_env()) as address, DaskTaskRunner(address=address) as runner:
        plan = plan_analysis(analysis_id, worker_memory(address))  # batches sized to the workers' memory
        batches = len(plan.tiles.batches)
        # Called from this synchronous flow, Prefect's dispatcher answers the id, not a coroutine.
        progress = cast(
            uuid.UUID,
            create_progress_artifact(0.0, key="analysis-progress", description=f"batches of analysis {analysis_id}"),
        )
        futures = {runner.submit(predict_batch, {"plan": plan, "batch_index": i}): i for i in range(batches)}
        for done, future in enumerate(as_completed(list(futures)), start=1):
            try:
                result = future.result()  # the task's own outcome, carried back by Dask
                reused += result.reused
                input_moments += [result.input_moments] if result.input_moments else []
            except Exception as exc:
                failures.append(f"batch {futures[future]}: {str(exc) or type(exc).__name__}")
            update_progress_artifact(progress, 100.0 * done / batches)
            if not record_batch_done(analysis_id, done - len(failures)):
                return Cancelled(message=f"analysis {analysis_id} was finished elsewhere (cancelled?); stopped")
    if failures:
        return Failed(message=f"{len(failures)} of {batches} batches failed after retries: {'; '.join(failures)}")
    summary = replace(finalise_analysis(plan, input_moments), batches=batches, batches_reused=reused)
    create_markdown_artifact(summary_markdown(summary), key="analysis-summary")
    logger.info("analysis %s: map %s, quicklook %s", analysis_id, summary.map, summary.quicklook)
    assessed = assess_map(analysis_id, return_state=True)
    if assessed.is_failed():  # the map stands without its assessment
        logger.warning("analysis %s: map not assessed: %s", analysis_id, assessed.message)
    return summary


def _prefect_env() -> dict[str, str]:
    """Local Dask workers report their task runs to this process' Prefect API, ephemeral or not."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {"PREFECT_API_URL": str(client.api_url).rstrip("/")}


def summary_markdown(summary: AnalysisSummary) -> str:
    rows = "\n".join(
        f"| {c.class_name} | {c.pixel_count:,} | {c.area_ha:,.2f} | {c.low_evidence_ha:,.2f} |" for c in summary.classes
    )
    scenes = "\n".join(
        f"| {s['acquired_at'][:10]} | `{s['scene_id']}` | {s['version']} | `{s['content_hash'][:16]}` |"
        for s in summary.input_scenes
    )
    warnings = "".join(f"> **Warning:** {w}\n\n" for w in summary.warnings)
    return (
        f"# Analysis {summary.analysis_id}\n\n{warnings}Model `{summary.model}`; {summary.valid_pixels:,} of "
        f"{summary.aoi_pixels:,} AOI pixels mapped; {summary.fields} field(s) predicted, "
        f"{summary.insufficient_fields} of them with insufficient evidence (mostly gap-filled time bins).\n\n"
        f"- crop map (COG): `{summary.map}`\n- quicklook: `{summary.quicklook}`\n\n"
        f"| class | pixels | hectares | low-evidence ha |\n| --- | --- | --- | --- |\n{rows}\n\n"
        f"## {len(summary.input_scenes)} scene(s) read\n\n"
        f"| acquired | scene | version | content SHA-256 |\n| --- | --- | --- | --- |\n{scenes}\n"
    )
