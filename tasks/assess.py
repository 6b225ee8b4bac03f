"""The assessment task: a finished map against its reference data, as a stored record and an artifact."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from cropai.assessment import assess_analysis, has_reference_data, summary_markdown
from cropai.services import services


@task(cache_policy=NO_CACHE)
def assess_map(analysis_id: uuid.UUID) -> dict[str, Any] | None:
    """Assess the analysis' map when it has labelled sample points or its owner reference fields
    in the AOI (None when there are neither); the result is stored and shown as an artifact."""
    svc = services()
    if not has_reference_data(svc.sessions, analysis_id):
        return None
    result = assess_analysis(svc.sessions, svc.store, analysis_id)
    create_markdown_artifact(summary_markdown(result), key="analysis-assessment")
    overall = result["overall_accuracy"]
    get_run_logger().info(
        "analysis %s assessed from %d reference %s: overall accuracy %.3f [%.3f, %.3f]",
        analysis_id,
        result["sample_size"],
        result["unit"],
        overall["value"],
        *overall["ci95"],
    )
    return result
