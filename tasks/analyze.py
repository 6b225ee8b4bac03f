"""Analysis tasks: plan (in the flow's process), predict batches (on Dask workers),
finalise (map, quicklook, statistics), and the state hooks that keep the Analysis row true."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from sqlalchemy.orm import Session, sessionmaker

from cropai.analysis import AnalysisPlan, ModelInputs, plan_from_catalogue
from cropai.analysis_records import owner_fields, read_request, save_results
from cropai.analysis_runs import cancel, fail, finish, owned_by, progress, record_outputs, start
from cropai.cluster import reuse_freed_memory
from cropai.config import load_settings
from cropai.cropmap import AnalysisSummary, finalise
from cropai.db import is_unreachable
from cropai.errors import ServiceUnavailable
from cropai.input_check import InputCheck, InputMoments, bin_labels, check_inputs
from cropai.services import services
from models.infer import BatchResult, create_outputs, run_batch
from models.versions import resolve


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def plan_analysis(analysis_id: uuid.UUID, worker_memory: int | None = None) -> AnalysisPlan:
    """Pick the scenes, the grid, the tiles and batches (within ``worker_memory`` bytes, the
    workers' smallest memory limit); create the prediction Zarr."""
    svc = services()
    request = read_request(svc.sessions, analysis_id)  # the one read of the row in this run
    model = resolve(svc.sessions, request.model_ref)
    plan = plan_from_catalogue(svc.sessions, request, ModelInputs.of_version(model), worker_memory)
    create_outputs(plan, svc.store)
    start(svc.sessions, analysis_id, model.id, len(plan.tiles.batches), plan.input_scenes, list(plan.warnings))
    get_run_logger().info(
        "planned %d tiles in %d batches over %d x %d px from %d scenes with %s",
        len(plan.tiles.tiles),
        len(plan.tiles.batches),
        plan.grid.width,
        plan.grid.height,
        len(plan.scenes),
        plan.model,
    )
    return plan


# A batch that raises is tried twice more; one that could not reach the catalogue (it reads the
# model version's row) keeps trying through an outage of up to about a minute.
BATCH_RETRIES_FOR_ERRORS = 2


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:
        return is_unreachable(exc) or task_run.run_count <= BATCH_RETRIES_FOR_ERRORS
    return False


@task(
    cache_policy=NO_CACHE,
    retries=4,
    retry_delay_seconds=[1, 5, 15, 30],
    retry_condition_fn=_worth_retrying,
    task_run_name="predict batch {batch_index}",
)
def predict_batch(plan: AnalysisPlan, batch_index: int) -> BatchResult:
    """Read, composite and predict one batch of tiles; write their cores into the Zarr."""
    from models.predict import load_predictor  # torch: loaded on the workers, not in the flow's process

    _one_torch_thread_per_dask_thread()
    reuse_freed_memory()
    svc = services()
    predictor = load_predictor(svc.store, svc.sessions, plan.model)
    return run_batch(plan, batch_index, svc.store, predictor)


def _one_torch_thread_per_dask_thread() -> None:
    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError):
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def finalise_analysis(plan: AnalysisPlan, input_moments: list[dict[str, Any]] | None = None) -> AnalysisSummary:
    """Crop-map COG, quicklook, class areas and per-field predictions; the batches' input
    moments (``BatchResult.input_moments``) checked against the model's training inputs."""
    svc = services()
    settings = load_settings()
    fields = owner_fields(svc.sessions, plan.request)
    cropmap = finalise(plan, svc.store, fields, max_gap_filled_share=settings.max_gap_filled_share)
    check = input_check(plan, input_moments or [], settings.input_shift_threshold)
    shifted = check.warning() if check else None
    warnings = (*plan.warnings, shifted) if shifted else plan.warnings
    save_results(svc.sessions, plan.analysis_id, cropmap)
    record_outputs(
        svc.sessions,
        plan.analysis_id,
        cropmap.map_key,
        cropmap.quicklook_key,
        input_check=check.as_record() if check else None,
        warnings=list(warnings),
    )
    if shifted:
        get_run_logger().warning("analysis %s: %s", plan.analysis_id, shifted)
    return AnalysisSummary(
        analysis_id=plan.analysis_id,
        model=plan.model,
        map=svc.store.gdal_path(cropmap.map_key),
        quicklook=svc.store.gdal_path(cropmap.quicklook_key),
        map_key=cropmap.map_key,
        quicklook_key=cropmap.quicklook_key,
        classes=cropmap.classes,
        fields=len(cropmap.fields),
        valid_pixels=cropmap.valid_pixels,
        aoi_pixels=cropmap.aoi_pixels,
        input_scenes=tuple(plan.input_scenes),
        warnings=warnings,
        insufficient_fields=sum(f.insufficient_evidence for f in cropmap.fields),
    )


def input_check(plan: AnalysisPlan, input_moments: list[dict[str, Any]], threshold: float) -> InputCheck | None:
    """How far the analysis' clear composites are from its model's training inputs; None for a
    model version registered without input statistics."""
    if plan.input_statistics is None:
        return None
    seen = InputMoments.empty(len(plan.time_bins), len(plan.band_means))
    for record in input_moments:
        seen += InputMoments.from_record(record)
    return check_inputs(plan.input_statistics, seen, threshold, bins=bin_labels(plan.time_bins))


def record_batch_done(analysis_id: uuid.UUID, done: int) -> bool:
    """Count finished batches; False once the analysis is no longer running (a cancel, say): stop then.

    Progress is advisory: when the catalogue stays away past the retry budget the count is
    skipped (the next batch writes it again) rather than failing the run."""
    try:
        return progress(services().sessions, analysis_id, done)
    except ServiceUnavailable as exc:
        get_run_logger().warning("progress of analysis %s not recorded: %s", analysis_id, exc)
        return True


# --- flow state hooks: the Analysis row follows the flow run that owns it ----------------------
# Each hook acts only when its flow run still owns the row: a late or superseded flow run (one
# that found its analysis finished, or an older attempt) leaves the row to its owner.


def _settle(flow_run: Any, move: Callable[[sessionmaker[Session], uuid.UUID], bool]) -> None:
    sessions = services().sessions
    analysis_id = uuid.UUID(flow_run.parameters["analysis_id"])  # a hook is an edge: the parameter is text
    if owned_by(sessions, analysis_id, flow_run.id):
        move(sessions, analysis_id)


def mark_completed(flow: Any, flow_run: Any, state: Any) -> None:
    _settle(flow_run, finish)


def mark_failed(flow: Any, flow_run: Any, state: Any) -> None:
    reason = state.message or state.type.value
    _settle(flow_run, lambda sessions, analysis_id: fail(sessions, analysis_id, reason))


def mark_cancelled(flow: Any, flow_run: Any, state: Any) -> None:
    reason = state.message or "cancelled"
    _settle(flow_run, lambda sessions, analysis_id: cancel(sessions, analysis_id, reason))
