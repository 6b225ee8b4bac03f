"""Analyses: submit one (it runs as a Prefect flow run), follow it, cancel it, and
fetch its crop map, quicklook and per-field predictions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.deps import (
    CurrentUser,
    Limit,
    Offset,
    OrchestratorDep,
    ServicesDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    Submitter,
    can_see,
    visible_to,
)
from api.errors import TooManyRequests, field_error
from api.orchestrator import Orchestrator, PrefectUnreachable
from api.queries import paged
from api.reconcile import reconcile_analysis
from api.routes.fields import field_feature
from api.schemas import (
    AnalysisCreate,
    AnalysisLinks,
    AnalysisOut,
    ClassAreaChangeOut,
    ClassStatOut,
    ComparisonOut,
    FieldChangeOut,
    Page,
)
from api.ttlcache import TTLCache
from cropai import webtiles
from cropai.analysis_records import RERUN_OF, MissingInputs, create_analysis, create_rerun, model_legend
from cropai.analysis_runs import FINISHED, RERUNNABLE, active_count, cancel, fail, record_flow_run, reopen
from cropai.compare import compare_maps
from cropai.config import Settings
from cropai.db import (
    Analysis,
    AnalysisClassStat,
    AnalysisStatus,
    FieldParcel,
    FieldPrediction,
    ModelVersion,
    User,
)
from cropai.errors import InvalidInput, ModelNotFound, ServiceUnavailable
from cropai.legend import Legend
from cropai.request_limits import checked_request
from cropai.services import Services
from cropai.storage import DEFAULT_URL_EXPIRY, ObjectStore
from cropai.webtiles import TileId
from models.versions import resolve

router = APIRouter(prefix="/analyses", tags=["analyses"])
logger = logging.getLogger("cropai.api")

# A client over its limit of unfinished analyses is asked to come back this much later.
ACTIVE_LIMIT_RETRY_S = 30
# A completed analysis' answer does not change, and clients poll it: it is kept, rendered,
# for a few seconds (bounded, so a rerun started from the Prefect UI shows up soon).
FINISHED_CACHE_TTL_S = 10.0
# A browser may reuse a tile this long; a rerun's new map is seen after it at most.
TILE_MAX_AGE_S = 300


def finished_analyses() -> TTLCache[uuid.UUID, tuple[int | None, bytes]]:
    """Rendered answers of completed analyses, with their owner for the visibility check. A
    completed analysis never changes (a rerun is a new one), so replicas need not share it."""
    return TTLCache(FINISHED_CACHE_TTL_S, name="finished-analyses")


# --- checks that need settings or the catalogue: each a 422 naming its field -------------------
# The AOI and the date window are checked by the core (``cropai.request_limits``), as for
# ``cropai analyze``; ``api.errors`` answers its refusals as 422s naming the field.


def checked_model(sessions: sessionmaker[Session], reference: str) -> ModelVersion:
    try:
        return resolve(sessions, reference)
    except (InvalidInput, ModelNotFound) as exc:
        raise field_error(("body", "model"), str(exc)) from None


# --- reading ---------------------------------------------------------------------------------


def analysis_out(session: Session, analysis: Analysis) -> AnalysisOut:
    base = f"/analyses/{analysis.id}"
    done = analysis.status == AnalysisStatus.completed
    classes = (
        session.scalars(
            select(AnalysisClassStat)
            .where(AnalysisClassStat.analysis_id == analysis.id)
            .order_by(AnalysisClassStat.class_id)
        ).all()
        if done
        else []
    )
    legend = model_legend(session, analysis.model_version_id)
    links = AnalysisLinks(
        self=base,
        **(
            {
                "map": f"{base}/map",
                "map_style": f"{base}/map.qml",
                "map_categories": f"{base}/map.aux.xml",
                "quicklook": f"{base}/quicklook.png",
                "fields": f"{base}/fields",
                "evidence": f"{base}/evidence",
                "assessment": f"{base}/assessment",
            }
            if done
            else {}
        ),
    )
    return AnalysisOut(
        id=analysis.id,
        name=analysis.name,
        owner_id=analysis.owner_id,
        status=analysis.status,
        status_reason=analysis.status_reason,
        model=analysis.model_ref,
        model_version=_model_ref(session, analysis.model_version_id),
        aoi=analysis.aoi_geojson,
        aoi_area_ha=analysis.aoi_area_ha,
        start_date=analysis.start_date,
        end_date=analysis.end_date,
        flow_run_id=analysis.flow_run_id,
        batches_total=analysis.batches_total,
        batches_done=analysis.batches_done,
        created_at=analysis.created_at,
        updated_at=analysis.updated_at,
        started_at=analysis.started_at,
        finished_at=analysis.finished_at,
        classes=[class_stat_out(c, legend) for c in classes],
        input_scenes=analysis.input_scenes or [],
        warnings=analysis.warnings or [],
        input_check=analysis.input_check,
        links=links,
        rerun_of=analysis.options.get(RERUN_OF),
    )


def class_stat_out(row: AnalysisClassStat, legend: Legend) -> ClassStatOut:
    return ClassStatOut(
        class_id=row.class_id,
        class_name=row.class_name,
        pixel_count=row.pixel_count,
        area_ha=row.area_ha,
        colour=legend.colour_of(row.class_id),
        low_evidence_pixels=row.low_evidence_pixels,
        # hectares in proportion to the pixels: the row keeps the class' pixel area, not the grid's
        low_evidence_ha=round(row.area_ha * row.low_evidence_pixels / row.pixel_count, 4) if row.pixel_count else 0.0,
    )


def _model_ref(session: Session, model_version_id: int | None) -> str | None:
    row = session.get(ModelVersion, model_version_id) if model_version_id is not None else None
    return f"{row.name}@{row.version}" if row is not None else None


def visible_analysis(session: Session, user: User, analysis_id: uuid.UUID) -> Analysis:
    analysis = session.get(Analysis, analysis_id)
    if analysis is None or not can_see(user, analysis.owner_id):
        raise HTTPException(404, f"no analysis {analysis_id}")  # another owner's analysis is not there for you
    return analysis


def read_settled(
    session: Session,
    analysis: Analysis,
    orchestrator: Orchestrator,
    settings: Settings,
    sessions: sessionmaker[Session],
) -> Analysis:
    """The analysis after checking a silent one against its flow run (``api.reconcile``)."""
    if not reconcile_analysis(analysis, orchestrator, settings, sessions):
        return analysis
    session.expire(analysis)
    return session.get_one(Analysis, analysis.id)


# --- routes ----------------------------------------------------------------------------------


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=AnalysisOut, summary="Submit an analysis")
def submit_analysis(
    body: AnalysisCreate,
    request: Request,
    response: Response,
    user: Submitter,
    session: SessionDep,
    services: ServicesDep,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="retrying with the same key returns the same analysis",
        ),
    ] = None,
) -> AnalysisOut:
    """Queue an analysis and start its flow run; poll ``Location`` until it is completed or failed.

    Retrying with the same ``Idempotency-Key`` returns the same analysis; when that analysis
    failed (or was cancelled), the retry starts it again in place as a new attempt."""
    if idempotency_key and (earlier := _by_key(session, user, idempotency_key)) is not None:
        if earlier.status in RERUNNABLE:
            return _rerun(response, session, services, settings, orchestrator, user, earlier)
        return _accepted(response, session, earlier)
    request.app.state.submit_limit.hit(str(user.id))
    _check_active_limit(session, user, settings)
    aoi = checked_request(settings, body.aoi, body.start_date, body.end_date)
    checked_model(services.sessions, body.model)
    try:
        analysis_id = _queue(services, body, aoi, user, idempotency_key)
    except IntegrityError:  # the same key, submitted concurrently: hand back the winner
        earlier = _by_key(session, user, idempotency_key or "")
        if earlier is None:
            raise
        return _accepted(response, session, earlier)
    _start_first_attempt(services, orchestrator, user, analysis_id)
    request.app.state.metrics.analyses_submitted.inc()
    return _accepted(response, session, session.get_one(Analysis, analysis_id))


def _queue(
    services: Services, body: AnalysisCreate, aoi: dict[str, Any], user: User, idempotency_key: str | None
) -> uuid.UUID:
    return create_analysis(
        services.sessions,
        aoi,
        body.start_date,
        body.end_date,
        body.model,
        owner_id=user.id,
        name=body.name,
        idempotency_key=idempotency_key,
    )


def _start_first_attempt(services: Services, orchestrator: Orchestrator, user: User, analysis_id: uuid.UUID) -> None:
    """Start a new analysis' flow run; when Prefect never got the request, the analysis is deleted
    again (nothing half-written) and the client retries."""
    try:
        _start(services, orchestrator, user, analysis_id, attempt=1)
    except PrefectUnreachable as exc:
        if not exc.maybe_done:
            with services.sessions.begin() as cleanup:
                cleanup.execute(delete(Analysis).where(Analysis.id == analysis_id))
        raise


def _check_active_limit(session: Session, user: User, settings: Settings) -> None:
    active = active_count(session, user.id)
    if active >= settings.active_analyses_per_user:
        raise TooManyRequests(
            f"unfinished analyses: you have {active} queued or running, at most "
            f"{settings.active_analyses_per_user}; wait for one to finish or cancel one",
            ACTIVE_LIMIT_RETRY_S,
        )


def _start(services: Services, orchestrator: Orchestrator, user: User, analysis_id: uuid.UUID, attempt: int) -> None:
    """Start the flow run of one attempt. When Prefect may have got the request but did not answer in
    time, the attempt is marked failed: a flow run Prefect creates late then finds it failed and stops
    (``cropai.analysis_runs.claim``), and the client can start the next attempt."""
    try:
        flow_run_id = orchestrator.start_analysis(
            analysis_id, attempt, f"analysis-{analysis_id.hex[:8]}-{attempt}", ["api", f"user:{user.id}"]
        )
    except ServiceUnavailable as exc:
        fail(
            services.sessions,
            analysis_id,
            f"not started: {exc}; submit again with the same Idempotency-Key or POST /analyses/{analysis_id}/rerun",
        )
        raise
    record_flow_run(services.sessions, analysis_id, attempt, flow_run_id)


def _rerun(
    response: Response,
    session: Session,
    services: Services,
    settings: Settings,
    orchestrator: Orchestrator,
    user: User,
    analysis: Analysis,
) -> AnalysisOut:
    _check_active_limit(session, user, settings)
    try:
        attempt = reopen(services.sessions, analysis.id)
    except InvalidInput as exc:  # finished or rerun by someone else meanwhile
        raise HTTPException(409, str(exc)) from None
    _start(services, orchestrator, user, analysis.id, attempt)
    session.expire(analysis)
    return _accepted(response, session, session.get_one(Analysis, analysis.id))


def _accepted(response: Response, session: Session, analysis: Analysis) -> AnalysisOut:
    response.headers["Location"] = f"/analyses/{analysis.id}"
    return analysis_out(session, analysis)


def _by_key(session: Session, user: User, key: str) -> Analysis | None:
    return session.scalar(select(Analysis).where(Analysis.owner_id == user.id, Analysis.idempotency_key == key))


@router.get("", response_model=Page[AnalysisOut], summary="List analyses, newest first")
def list_analyses(
    user: CurrentUser,
    session: SessionDep,
    status_: Annotated[AnalysisStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    query = select(Analysis).where(visible_to(user, Analysis.owner_id))
    if status_ is not None:
        query = query.where(Analysis.status == status_)
    rows, total = paged(session, query, limit, offset, Analysis.created_at.desc(), Analysis.id)
    return {"items": [analysis_out(session, a) for a in rows], "total": total, "limit": limit, "offset": offset}


@router.get("/{analysis_id}", response_model=AnalysisOut, summary="Read an analysis: status, classes, links")
def read_analysis(
    request: Request,
    analysis_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    services: ServicesDep,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
) -> Response:
    cache: TTLCache[uuid.UUID, tuple[int | None, bytes]] = request.app.state.finished_analyses
    cached = cache.get(analysis_id)
    if cached is not None and can_see(user, cached[0]):
        return Response(cached[1], media_type="application/json")
    analysis = visible_analysis(session, user, analysis_id)
    out = analysis_out(session, read_settled(session, analysis, orchestrator, settings, services.sessions))
    # Built and checked as AnalysisOut already: answer with its JSON instead of having FastAPI
    # validate it a second time (this is the endpoint clients poll).
    body = out.model_dump_json().encode()
    if out.status == AnalysisStatus.completed:
        cache.put(analysis_id, (out.owner_id, body))
    return Response(body, media_type="application/json")


@router.delete("/{analysis_id}", response_model=AnalysisOut, summary="Cancel a queued or running analysis")
def cancel_analysis(
    analysis_id: uuid.UUID, user: Submitter, session: SessionDep, services: ServicesDep, orchestrator: OrchestratorDep
) -> AnalysisOut:
    analysis = visible_analysis(session, user, analysis_id)
    if analysis.status in FINISHED:
        raise HTTPException(409, f"analysis {analysis_id} is {analysis.status.value} already; nothing to cancel")
    reason = f"cancelled by {user.email}"
    if analysis.flow_run_id is not None:
        orchestrator.cancel(analysis.flow_run_id, reason)
    cancel(services.sessions, analysis_id, reason)
    session.expire(analysis)
    return analysis_out(session, session.get_one(Analysis, analysis_id))


@router.post(
    "/{analysis_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisOut,
    summary="Rerun a failed or cancelled analysis in place, or repeat a completed one as a new analysis",
)
def rerun_analysis(
    analysis_id: uuid.UUID,
    request: Request,
    response: Response,
    user: Submitter,
    session: SessionDep,
    services: ServicesDep,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
) -> AnalysisOut:
    """A failed or cancelled analysis starts again as its next attempt, under the same id; batches
    that a previous attempt finished are reused, so only the rest is computed.

    A completed analysis is repeated as a new analysis (``Location``) on the inputs it recorded:
    its model version and exact scene versions, even when newer ones were ingested since. A scene
    version no longer in the catalogue is a 409 naming it."""
    analysis = visible_analysis(session, user, analysis_id)
    if analysis.status == AnalysisStatus.completed:
        return _repeat(request, response, session, services, settings, orchestrator, user, analysis)
    if analysis.status not in RERUNNABLE:
        raise HTTPException(
            409,
            f"analysis {analysis_id} is {analysis.status.value}: only a failed or cancelled analysis can be rerun "
            "(in place), or a completed one repeated",
        )
    return _rerun(response, session, services, settings, orchestrator, user, analysis)


def _repeat(
    request: Request,
    response: Response,
    session: Session,
    services: Services,
    settings: Settings,
    orchestrator: Orchestrator,
    user: User,
    analysis: Analysis,
) -> AnalysisOut:
    request.app.state.submit_limit.hit(str(user.id))
    _check_active_limit(session, user, settings)
    try:
        repeat_id = create_rerun(services.sessions, analysis.id)
    except MissingInputs as exc:
        raise HTTPException(409, str(exc)) from None
    _start_first_attempt(services, orchestrator, user, repeat_id)
    request.app.state.metrics.analyses_submitted.inc()
    return _accepted(response, session, session.get_one(Analysis, repeat_id))


@router.get(
    "/{analysis_id}/compare/{other_id}",
    response_model=ComparisonOut,
    summary="Compare two completed analyses: identical or not, class areas, fields whose class changed",
)
def compare_analyses(
    analysis_id: uuid.UUID, other_id: uuid.UUID, user: CurrentUser, session: SessionDep, store: StoreDep
) -> ComparisonOut:
    """Reads both maps (a sync route: FastAPI runs it in its thread pool, off the event loop)."""
    a, b = results_of(session, user, analysis_id), results_of(session, user, other_id)
    comparison = compare_maps(
        store,
        a.map_key,
        b.map_key,
        model_legend(session, a.model_version_id),
        _field_classes(session, analysis_id),
        _field_classes(session, other_id),
    )
    return ComparisonOut(
        a=analysis_id,
        b=other_id,
        identical=comparison.identical,
        reason=comparison.reason,
        pixels_differing=comparison.pixels_differing,
        classes=[
            ClassAreaChangeOut(
                id=c.class_id,
                name=c.class_name,
                area_ha_a=c.area_ha_a,
                area_ha_b=c.area_ha_b,
                difference_ha=c.difference_ha,
            )
            for c in comparison.classes
        ],
        fields_changed=[
            FieldChangeOut(field_id=f.field_id, class_a=f.class_a, class_b=f.class_b) for f in comparison.fields_changed
        ],
    )


def _field_classes(session: Session, analysis_id: uuid.UUID) -> dict[int, int]:
    rows = session.execute(
        select(FieldPrediction.field_id, FieldPrediction.class_id).where(FieldPrediction.analysis_id == analysis_id)
    )
    return {field_id: class_id for field_id, class_id in rows}


@dataclass(frozen=True)
class Results:
    """Where a completed analysis' outputs are in the store."""

    map_key: str
    quicklook_key: str
    model_version_id: int | None


def results_of(session: Session, user: User, analysis_id: uuid.UUID) -> Results:
    analysis = visible_analysis(session, user, analysis_id)
    # A completed analysis has both keys (``cropai.analysis_runs.finish``): the test is for the types.
    if analysis.status != AnalysisStatus.completed or analysis.map_key is None or analysis.quicklook_key is None:
        raise HTTPException(
            409, f"analysis {analysis_id} is {analysis.status.value}: its results exist once it is completed"
        )
    return Results(analysis.map_key, analysis.quicklook_key, analysis.model_version_id)


@router.get(
    "/{analysis_id}/map",
    summary="The crop map (COG: class band + confidence band)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/tiff": {}}}},
)
def download_map(
    analysis_id: uuid.UUID,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    presign: Annotated[
        bool, Query(description="answer with a presigned URL to the object instead of the bytes")
    ] = False,
) -> Any:
    results = results_of(session, user, analysis_id)
    if presign:
        if not settings.uses_s3:
            raise HTTPException(409, "presigned URLs need an S3 store; this one is a folder: download without presign")
        return JSONResponse(
            {"url": store.presigned_url(results.map_key), "expires_in_s": int(DEFAULT_URL_EXPIRY.total_seconds())}
        )
    return _geotiff_download(store, results.map_key, f"cropmap-{analysis_id}.tif")


def _geotiff_download(store: ObjectStore, key: str, filename: str) -> StreamingResponse:
    return StreamingResponse(
        store.open_stream(key),
        media_type="image/tiff",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{analysis_id}/map.qml",
    summary="The crop map's QGIS style: class names and colours of its class band",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}}},
)
def download_map_style(analysis_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    """Saved beside the downloaded map with the same name (``cropmap-{id}.qml``), QGIS shows the
    class names in the layer's legend by itself."""
    return _legend_download(session, user, analysis_id, Legend.qgis_style, f"cropmap-{analysis_id}.qml")


@router.get(
    "/{analysis_id}/map.aux.xml",
    summary="The crop map's GDAL sidecar: category names and attribute table of its class band",
    response_class=Response,
    responses={200: {"content": {"text/xml": {}}}},
)
def download_map_categories(analysis_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    """GDAL (gdalinfo, QGIS' attribute table) reads it beside the map of the same name: saved as
    ``cropmap-{id}.tif.aux.xml``, or found here by GDAL next to ``/analyses/{id}/map`` over HTTP."""
    return _legend_download(session, user, analysis_id, Legend.gdal_categories, f"cropmap-{analysis_id}.tif.aux.xml")


def _legend_download(
    session: Session, user: User, analysis_id: uuid.UUID, render: Callable[[Legend], str], filename: str
) -> Response:
    """A file made from the legend of the model the analysis ran, to save beside its map."""
    results = results_of(session, user, analysis_id)
    return Response(
        render(model_legend(session, results.model_version_id)),
        media_type="text/xml",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{analysis_id}/evidence",
    summary="How often each pixel was seen clear (COG: clear_bins, of the EVIDENCE_BINS bins of the season)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/tiff": {}}}},
)
def download_evidence(analysis_id: uuid.UUID, user: CurrentUser, session: SessionDep, store: StoreDep) -> Any:
    """The evidence COG beside the map: a pixel seen clear in few bins was mostly gap-filled."""
    results = results_of(session, user, analysis_id)
    key = f"{results.map_key.rsplit('/', 1)[0]}/evidence.tif"
    return _geotiff_download(store, key, f"evidence-{analysis_id}.tif")


@router.get(
    "/{analysis_id}/quicklook.png",
    summary="A PNG preview of the crop map with its legend",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def quicklook(analysis_id: uuid.UUID, user: CurrentUser, session: SessionDep, store: StoreDep) -> Response:
    results = results_of(session, user, analysis_id)
    return Response(store.get(results.quicklook_key), media_type="image/png")


@router.get(
    "/{analysis_id}/tiles/{z}/{x}/{y}.png",
    summary="A web map tile of the crop map (XYZ, EPSG:3857)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def map_tile(
    analysis_id: uuid.UUID,
    z: int,
    x: int,
    y: int,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    layer: Annotated[
        webtiles.MapLayer,
        Query(
            description="class (default): the crop classes in the map's colours; confidence: the probability "
            "of the predicted class in 20 % steps, "
            + ", ".join(f"{s.lower_percent}-{s.upper_percent} % {s.colour}" for s in webtiles.CONFIDENCE_RAMP)
        ),
    ] = webtiles.MapLayer.CLASS,
) -> Response:
    """256 px PNG tiles of the class or confidence band, transparent outside the AOI;
    rendered from the COG on first request and cached in the store beside it, per layer."""
    results = results_of(session, user, analysis_id)
    try:
        tile = TileId(z, x, y)
    except InvalidInput as exc:
        raise HTTPException(404, str(exc)) from None
    body = webtiles.map_tile(store, results.map_key, str(analysis_id), tile, layer=layer)
    return Response(body, media_type="image/png", headers={"Cache-Control": f"private, max-age={TILE_MAX_AGE_S}"})


@router.get("/{analysis_id}/fields", summary="Per-field predictions as a GeoJSON FeatureCollection")
def field_predictions(analysis_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    legend = model_legend(session, results_of(session, user, analysis_id).model_version_id)
    rows = session.execute(
        select(FieldParcel, FieldPrediction)
        .join(FieldPrediction, FieldPrediction.field_id == FieldParcel.id)
        .where(FieldPrediction.analysis_id == analysis_id)
        .order_by(FieldParcel.id)
    ).all()
    features = [
        field_feature(
            field,
            class_id=p.class_id,
            class_name=p.class_name,
            class_colour=legend.colour_of(p.class_id),
            share=p.share,
            mean_confidence=p.mean_confidence,
            pixel_count=p.pixel_count,
            gap_filled_share=p.gap_filled_share,
            insufficient_evidence=p.insufficient_evidence,
        )
        for field, p in rows
    ]
    return {"type": "FeatureCollection", "features": features}
