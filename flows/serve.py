"""Serve Crop AI's deployments from this process, without a work pool.

The embedded stack (`cropai serve`, `cropai up`) and the tests use this: one process
registers the deployments with the Prefect server it is pointed at and runs their
flow runs as subprocesses. Production uses `prefect deploy` and a `cropai` pool
worker instead (prefect.yaml); names and schedules match, so the API and operators
see the same deployments either way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from cropai.config import load_settings
from flows.analyze import analyze
from flows.ingest import ingest_scenes
from flows.train import train

INGEST_CRON = "15 */6 * * *"  # as in prefect.yaml
INGEST_SOURCE = "store:inbox/"


# Flow runs import the flows as modules of the installed package, as prefect.yaml does: a flow
# loaded from its file would get a module name remote Dask workers cannot import.
MODULE = EntrypointType.MODULE_PATH


def serve_deployments(limit: int | None = None, schedule_ingest: bool = True) -> None:
    """Block, running flow runs of `analyze/analyze`, `ingest_scenes/ingest-scheduled`, `train/train`.

    At most ``limit`` flow runs at once in this process (default CROPAI_FLOW_CONCURRENCY) and at
    most CROPAI_ANALYSIS_CONCURRENCY analyses at once across every runner of the deployment:
    Prefect holds the rest as ``AwaitingConcurrencySlot``, and their analyses stay ``queued``."""
    settings = load_settings()
    serve(
        _built(
            analyze.to_deployment(
                name="analyze",
                tags=["analyze"],
                entrypoint_type=MODULE,
                concurrency_limit=settings.analysis_concurrency,
                description="Map the crops of one Analysis request.",
            )
        ),
        _built(
            ingest_scenes.to_deployment(
                name="ingest-scheduled",
                tags=["ingest"],
                parameters={"source": INGEST_SOURCE},
                entrypoint_type=MODULE,
                schedule=Cron(INGEST_CRON, timezone="UTC") if schedule_ingest else None,
                description="Ingest the scenes dropped in the store's inbox/ prefix.",
            )
        ),
        _built(
            train.to_deployment(
                name="train",
                tags=["train"],
                entrypoint_type=MODULE,
                description="Train and register a crop-type model.",
            )
        ),
        limit=limit or settings.flow_concurrency,
        print_starting_message=False,
    )


def _built(deployment: RunnerDeployment | Coroutine[Any, Any, RunnerDeployment]) -> RunnerDeployment:
    """What ``to_deployment`` returns outside an event loop: Prefect types it for async callers too."""
    if not isinstance(deployment, RunnerDeployment):
        raise TypeError("to_deployment returned a coroutine: serve the deployments outside an event loop")
    return deployment
