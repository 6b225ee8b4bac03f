"""The one place the API talks to Prefect: start deployments, read and cancel flow runs.

Prefect's client is imported on first use: the read-only request path never needs
it, and the API starts faster without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cropai.config import Settings
from cropai.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

# Prefect state types after which a flow run will not change by itself.
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class FlowRunStatus:
    name: str
    state_type: str  # Prefect's StateType value: SCHEDULED, RUNNING, FAILED, CRASHED, ...
    state_name: str
    message: str | None
    state_age_s: float = 0.0  # seconds since the run entered its state

    @property
    def is_final(self) -> bool:
        return self.state_type in FINAL_STATES


class Orchestrator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def api_url(self) -> str:
        if self.settings.prefect_api_url:
            return self.settings.prefect_api_url
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value()
        if not url:
            raise ServiceUnavailable(
                "no Prefect API is configured: set CROPAI_PREFECT_API_URL (or PREFECT_API_URL) to the "
                "Prefect server's API, e.g. http://127.0.0.1:4200/api"
            )
        return url

    @contextmanager
    def _client(self) -> Iterator[SyncPrefectClient]:
        import httpx
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.exceptions import PrefectHTTPStatusError

        url = self.api_url
        try:
            with SyncPrefectClient(url, httpx_settings={"timeout": self.settings.connect_timeout_s}) as client:
                yield client
        except (httpx.TransportError, PrefectHTTPStatusError) as exc:
            raise ServiceUnavailable(f"cannot reach the Prefect API at {url}: {exc}") from None

    def check(self) -> None:
        """Prefect's health endpoint, by plain HTTP: a readiness probe should not load its client."""
        import httpx

        url = self.api_url
        try:
            response = httpx.get(f"{url.rstrip('/')}/health", timeout=self.settings.connect_timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"cannot reach the Prefect API at {url}: {exc}") from None

    def start_analysis(self, analysis_id: uuid.UUID, name: str, tags: list[str]) -> uuid.UUID:
        """Create a flow run of the analysis deployment; idempotent per analysis."""
        return self._run_deployment(
            self.settings.analyze_deployment, {"analysis_id": str(analysis_id)}, name, tags,
            idempotency_key=f"analysis-{analysis_id}",
        )  # fmt: skip

    def start_ingest(self, source: str, band_mapping: list[str | None] | None, tags: list[str]) -> uuid.UUID:
        parameters: dict[str, Any] = {"source": source}
        if band_mapping:
            parameters["band_mapping"] = band_mapping
        return self._run_deployment(self.settings.ingest_deployment, parameters, None, tags)

    def _run_deployment(
        self, deployment: str, parameters: dict[str, Any], name: str | None, tags: list[str],
        idempotency_key: str | None = None,
    ) -> uuid.UUID:  # fmt: skip
        from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound
        from prefect.exceptions import PrefectHTTPStatusError

        with self._client() as client:
            try:
                found = client.read_deployment_by_name(deployment)
            except PrefectObjectNotFound:
                raise ServiceUnavailable(
                    f"the Prefect deployment {deployment!r} is not registered at {self.api_url}: register it "
                    "with `prefect deploy --all` (and run a `cropai` pool worker) or serve it with `cropai serve`"
                ) from None
            try:
                flow_run = client.create_flow_run_from_deployment(
                    found.id, parameters=parameters, name=name, tags=tags, idempotency_key=idempotency_key
                )
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code not in (409, 422):
                    raise
                # The deployment's parameter schema refused a value the API let through.
                detail = exc.response.json().get("detail", exc.response.text)
                raise InvalidInput(f"Prefect refused the parameters of {deployment}: {detail}") from None
        return flow_run.id

    def flow_run_status(self, flow_run_id: uuid.UUID) -> FlowRunStatus | None:
        """The flow run's state, or None when Prefect no longer knows the run."""
        from prefect.exceptions import ObjectNotFound as PrefectObjectNotFound

        with self._client() as client:
            try:
                run = client.read_flow_run(flow_run_id)
            except PrefectObjectNotFound:
                return None
        state = run.state
        if state is None:
            return FlowRunStatus(run.name, "PENDING", "Pending", None)
        age = (datetime.now(UTC) - state.timestamp).total_seconds() if state.timestamp else 0.0
        return FlowRunStatus(run.name, state.type.value, state.name, state.message, age)

    def cancel(self, flow_run_id: uuid.UUID, reason: str) -> None:
        """Cancel a flow run: at once if it has not started, else by asking its runner to stop it."""
        from prefect.states import Cancelled, Cancelling

        status = self.flow_run_status(flow_run_id)
        if status is None or status.is_final:
            return
        state = Cancelled(message=reason) if status.state_type in ("SCHEDULED", "PENDING") else Cancelling(message=reason)
        with self._client() as client:
            client.set_flow_run_state(flow_run_id, state, force=True)
