"""Registered model versions and their held-out metrics; training a new version on your fields."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.deps import (
    CurrentUser,
    Limit,
    Offset,
    OrchestratorDep,
    ServicesDep,
    SessionDep,
    Submitter,
    can_see,
    visible_to,
)
from api.orchestrator import Orchestrator, PrefectUnreachable
from api.queries import paged
from api.schemas import ModelVersionOut, Page, TrainingRequest, TrainingRunOut
from cropai import training_runs
from cropai.db import ModelVersion, TrainingRun, User
from models.versions import list_versions, model_card

if TYPE_CHECKING:
    from cropai.training_season import ParcelTraining

router = APIRouter(prefix="/models", tags=["models"])


def model_out(row: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        ref=f"{row.name}@{row.version}",
        name=row.name,
        version=row.version,
        format=row.format,
        description=row.description,
        metrics=row.metrics,
        classes=row.contract.get("classes", []),
        bands=row.contract.get("bands", []),
        created_at=row.created_at,
        card=model_card(row),
    )


@router.get("", response_model=list[ModelVersionOut], summary="List model versions")
def list_models(user: CurrentUser, services: ServicesDep) -> list[ModelVersionOut]:
    return [model_out(row) for row in list_versions(services.sessions)]


# --- training ------------------------------------------------------------------------------


def parcel_training(body: TrainingRequest, user: User) -> ParcelTraining:
    """The request as the train flow takes it: the caller's fields from the catalogue."""
    # cropai.training_season reads parcels through pyogrio, pandas and rasterio: imported on the
    # first training request, so that the API process starts without them.
    from cropai.training_season import ParcelTraining

    return ParcelTraining(
        owner_id=user.id,
        field_ids=body.field_ids,
        label_column=body.label_property,
        legend_records=[row.model_dump(by_alias=True, exclude_none=True) for row in body.legend]
        if body.legend is not None
        else None,
        start=body.start,
        end=body.end,
        bin_length=body.bin_length,
        inner_buffer_m=body.inner_buffer_m,
        min_fields=body.min_fields,
        merge_rare=body.merge_rare,
    )


def training_run_out(run: TrainingRun) -> TrainingRunOut:
    return TrainingRunOut(
        id=run.id,
        name=run.name,
        owner_id=run.owner_id,
        status=run.status,
        status_reason=run.status_reason,
        family=run.family,
        flow_run_id=run.flow_run_id,
        model_version=run.model_ref,
        metrics=run.metrics,
        request=run.request,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TrainingRunOut,
    summary="Train a model version on your labelled fields",
)
def start_training(
    body: TrainingRequest,
    response: Response,
    user: Submitter,
    session: SessionDep,
    services: ServicesDep,
    orchestrator: OrchestratorDep,
) -> TrainingRunOut:
    """Starts a run of the train deployment on your fields (uploaded with POST /fields) whose
    ``label_property`` holds each crop code, over the catalogue's scenes of the season; poll
    ``Location`` until it is completed (with the registered ``model_version``) or failed.

    Everything that can be checked without pixels is checked first, and a refusal (a property
    no field has, codes the legend does not map, rare classes, a bad season, fields outside every
    catalogued scene of the season) is a 422 naming it: then nothing is started or registered."""
    from cropai.training_season import check_training  # see parcel_training

    request = parcel_training(body, user)
    check_training(services.sessions, request)
    run_id = training_runs.create(services.sessions, user.id, body.name, request, body.family)
    parameters: dict[str, Any] = {
        "name": body.name,
        "seed": body.seed,
        "epochs": body.epochs,
        "register_version": True,
        "family": body.family,
        "parcels": request.model_dump(mode="json"),
    }
    _start_run(services.sessions, orchestrator, user, run_id, parameters)
    response.headers["Location"] = f"/models/training/{run_id}"
    return training_run_out(session.get_one(TrainingRun, run_id))


def _start_run(
    sessions: sessionmaker[Session],
    orchestrator: Orchestrator,
    user: User,
    run_id: uuid.UUID,
    parameters: dict[str, Any],
) -> None:
    """Start the run's flow run. When Prefect never got the request the run is deleted again
    (nothing half-written); when it may have got it late, the run is failed ("not started"), so
    that a flow run created afterwards finds it so and does nothing."""
    try:
        flow_run_id = orchestrator.start_training(run_id, parameters, ["api", "train", f"user:{user.id}"])
    except Exception as exc:
        if isinstance(exc, PrefectUnreachable) and exc.maybe_done:
            training_runs.fail(sessions, run_id, f"not started: {exc}; submit the request again")
        else:
            training_runs.discard(sessions, run_id)
        raise
    training_runs.record_flow_run(sessions, run_id, flow_run_id)


@router.get("/training", response_model=Page[TrainingRunOut], summary="List training runs, newest first")
def list_training_runs(user: CurrentUser, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> dict:
    query = select(TrainingRun).where(visible_to(user, TrainingRun.owner_id))
    rows, total = paged(session, query, limit, offset, TrainingRun.created_at.desc(), TrainingRun.id)
    return {"items": [training_run_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


@router.get("/training/{run_id}", response_model=TrainingRunOut, summary="Read a training run: status, version, scores")
def read_training_run(run_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> TrainingRunOut:
    run = session.get(TrainingRun, run_id)
    if run is None or not can_see(user, run.owner_id):
        raise HTTPException(404, f"no training run {run_id}")  # another owner's run is not there for you
    return training_run_out(run)
