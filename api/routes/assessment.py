"""Assessing a completed analysis: the stratified sample to label for an accuracy and area
assessment (Olofsson et al. 2014)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.deps import CurrentUser, SessionDep, StoreDep
from api.routes.analyses import model_legend, results_of
from cropai.sample_design import DEFAULT_MINIMUM, DEFAULT_TARGET_SE, design_for_map

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
