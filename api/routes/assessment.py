"""Assessing a completed analysis: the stratified sample to label for an accuracy and area
assessment (Olofsson et al. 2014), its labels back, and the assessment itself."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, ServicesDep, SessionDep, StoreDep, Submitter
from api.routes.analyses import results_of, visible_analysis
from api.schemas import AssessmentOut, SampleLabelsStored
from cropai.analysis_records import model_legend
from cropai.assessment import assess_analysis, import_sample_labels, stored_assessment
from cropai.db import User
from cropai.sample_design import DEFAULT_MINIMUM, DEFAULT_TARGET_SE, design_for_map
from cropai.services import Services

router = APIRouter(prefix="/analyses", tags=["assessment"])


class SampleDesignRequest(BaseModel):
    target_overall_se: float = Field(
        default=DEFAULT_TARGET_SE, gt=0, lt=0.5, description="target standard error of overall accuracy"
    )
    expected_users_accuracy: dict[str, float] = Field(
        default_factory=dict, description="class name -> user's accuracy expected of it (0..1); 0.8 when absent"
    )
    minimum_per_class: int = Field(default=DEFAULT_MINIMUM, ge=2, le=1000, description="points of each map class")
    seed: int = Field(default=0, ge=0, description="the same seed draws the same points")


@router.post(
    "/{analysis_id}/sample-design",
    summary="Draw a stratified random sample of the crop map to label (GeoJSON, or CSV with format=csv)",
    responses={200: {"content": {"application/geo+json": {}, "text/csv": {}}}},
)
def sample_design(
    analysis_id: uuid.UUID,
    body: SampleDesignRequest,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    format: Annotated[str, Query(pattern="^(geojson|csv)$", description="geojson (default) or csv")] = "geojson",
) -> Any:
    results = results_of(session, user, analysis_id)
    design = design_for_map(
        store,
        results.map_key,
        model_legend(session, results.model_version_id),
        target_overall_se=body.target_overall_se,
        expected_users_accuracy=body.expected_users_accuracy,
        minimum_per_class=body.minimum_per_class,
        seed=body.seed,
    )
    if format == "csv":
        return Response(
            design.as_csv(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="sample-{analysis_id}.csv"'},
        )
    collection = design.as_geojson()
    collection["design"] = {
        "target_overall_se": design.target_overall_se,
        "expected_users_accuracy": design.expected_users_accuracy,
        "minimum_per_class": design.minimum_per_class,
        "mapped_pixels": design.mapped_pixels,
        "points_per_class": design.points_per_class,
        "seed": design.seed,
    }
    return collection


# The body is read here and parsed in the thread pool: the route takes the design's file as it
# was exported and filled in, CSV or GeoJSON, not a JSON model.
LABELS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/geo+json": {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "/{analysis_id}/sample-labels",
    response_model=SampleLabelsStored,
    summary="Upload the labelled sample design (its CSV or GeoJSON with a filled label column)",
    openapi_extra=LABELS_BODY,
)
async def sample_labels(
    analysis_id: uuid.UUID, request: Request, user: Submitter, services: ServicesDep
) -> SampleLabelsStored:
    """Each point's ``label`` is a class name or code of the model's legend (points without one
    are left out); its map class must be the map's at the point. Replaces any earlier labels."""
    body = await request.body()  # at most CROPAI_MAX_REQUEST_BYTES: the body limit stops longer ones
    return await run_in_threadpool(_store_labels, services, user, analysis_id, body)


def _store_labels(services: Services, user: User, analysis_id: uuid.UUID, body: bytes) -> SampleLabelsStored:
    with services.sessions() as session:
        legend = model_legend(session, results_of(session, user, analysis_id).model_version_id)
    points = import_sample_labels(services.sessions, services.store, analysis_id, body)
    names = {c.id: c.name for c in legend.classes}
    strata = Counter(names[p.stratum_id] for p in points if p.stratum_id in names)
    return SampleLabelsStored(analysis_id=analysis_id, count=len(points), points_per_class=dict(strata))


@router.post(
    "/{analysis_id}/assessment",
    response_model=AssessmentOut,
    summary="Assess the map against its labelled sample, else your reference fields in the AOI",
)
def assess(analysis_id: uuid.UUID, user: Submitter, session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    """Error-adjusted areas, accuracies with 95 % intervals and the confusion matrix; stored in
    place of the earlier assessment. Without reference data in the AOI it is a 422 saying how to
    add some."""
    results_of(session, user, analysis_id)
    return assess_analysis(services.sessions, services.store, analysis_id)


@router.get("/{analysis_id}/assessment", response_model=AssessmentOut, summary="The map's latest assessment")
def read_assessment(analysis_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    visible_analysis(session, user, analysis_id)
    result = stored_assessment(session, analysis_id)
    if result is None:
        raise HTTPException(
            404,
            f"analysis {analysis_id} has not been assessed: POST /analyses/{analysis_id}/assessment assesses it "
            "against its labelled sample or your reference fields",
        )
    return result
