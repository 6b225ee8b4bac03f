"""Ingestion, for admins: start a run of the ingestion deployment, list past runs."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from api.deps import AdminUser, Limit, Offset, OrchestratorDep, SessionDep, SettingsDep
from api.errors import field_error
from api.queries import paged
from api.schemas import FlowRunStarted, IngestRequest, IngestRunOut, Page
from cropai.db import IngestRun
from cropai.errors import InvalidInput
from cropai.source_bounds import SourceBounds, check_source

router = APIRouter(prefix="/ingest", tags=["ingest"])


@router.post("", response_model=FlowRunStarted, status_code=status.HTTP_202_ACCEPTED, summary="Start an ingestion run")
def start_ingest(
    body: IngestRequest, admin: AdminUser, orchestrator: OrchestratorDep, settings: SettingsDep
) -> FlowRunStarted:
    """Runs the scheduled ingestion's deployment now, on ``source``; follow it in GET /ingest/runs or the Prefect UI.

    A source outside CROPAI_INGEST_ROOTS, the store's inbox or public http(s) hosts is refused
    here, before a run starts; the run checks it again, with everything it leads to."""
    source = body.source.strip()
    try:
        check_source(source, SourceBounds.for_server(settings))
    except InvalidInput as exc:
        raise field_error(("body", "source"), str(exc)) from None
    flow_run_id = orchestrator.start_ingest(
        source, body.band_mapping, body.radiometric_offset, ["api", f"user:{admin.id}"]
    )
    return FlowRunStarted(flow_run_id=flow_run_id, deployment=settings.ingest_deployment)


@router.get("/runs", response_model=Page[IngestRunOut], summary="List ingestion runs, newest first")
def list_runs(admin: AdminUser, session: SessionDep, limit: Limit = 20, offset: Offset = 0) -> dict:
    rows, total = paged(session, select(IngestRun), limit, offset, IngestRun.id.desc())
    return {"items": rows, "total": total, "limit": limit, "offset": offset}
