"""The one place the API talks to Prefect: start deployments, read, cancel and end flow runs.

Every call goes to Prefect's REST API by plain HTTP (httpx, imported on first use: the
read-only request path never needs it) under one deadline
(``orchestrator_deadline_s`` for the whole call, however many requests it makes) and
with no retry loop: a request thread never waits on Prefect longer than that. After a
call fails to get an answer, a circuit breaker answers "unavailable" at once for
``orchestrator_cooldown_s``, so a frozen Prefect cannot starve the API's thread pool.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cropai.config import Settings
from cropai.errors import InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    import httpx

# Answers of a Prefect server that is up but busy, and the pause before asking again.
BUSY_STATUSES = (429, 502, 503)
BUSY_PAUSE_S = 0.3
# Prefect state types after which a flow run will not change by itself.
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class PrefectUnreachable(ServiceUnavailable):
    """Prefect did not answer. ``maybe_done`` is True when the request may have reached it
    (a timeout after sending), so what it asked for may still happen."""

    def __init__(self, message: str, maybe_done: bool) -> None:
        super().__init__(message)
        self.maybe_done = maybe_done


@dataclass(frozen=True)
class FlowRunStatus:
    name: str
    state_type: str  # Prefect's StateType value: SCHEDULED, PENDING, RUNNING, CANCELLING, FAILED, ...
    state_name: str
    message: str | None
    state_age_s: float = 0.0  # seconds since the run entered its state

    @property
    def is_final(self) -> bool:
        return self.state_type in FINAL_STATES


class CircuitBreaker:
    """Open for ``cooldown_s`` after a failure: calls are refused without trying."""

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self._open_until = 0.0
        self._reason = ""
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            left = self._open_until - time.monotonic()
            if left > 0:
                raise PrefectUnreachable(f"{self._reason} (not asking again for {left:.0f} s)", maybe_done=False)

    def trip(self, reason: str) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.cooldown_s
            self._reason = reason

    def reset(self) -> None:
        with self._lock:
            self._open_until = 0.0


class Orchestrator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.breaker = CircuitBreaker(settings.orchestrator_cooldown_s)

    @property
    def api_url(self) -> str:
        if self.settings.prefect_api_url:
            return self.settings.prefect_api_url.rstrip("/")
        from prefect.settings import PREFECT_API_URL

        url = PREFECT_API_URL.value()
        if not url:
            raise ServiceUnavailable(
                "no Prefect API is configured: set CROPAI_PREFECT_API_URL (or PREFECT_API_URL) to the "
                "Prefect server's API, e.g. http://127.0.0.1:4200/api"
            )
        return url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        """Basic auth when the Prefect server is protected (its PREFECT_SERVER_API_AUTH_STRING)."""
        auth = self.settings.prefect_auth_string.get_secret_value()
        return {"Authorization": f"Basic {base64.b64encode(auth.encode()).decode()}"} if auth else {}

    def _call(self, requests: list[tuple[str, str, dict[str, Any] | None]]) -> list[httpx.Response]:
        """Send requests in order under one deadline; each may depend on nothing but its own success."""
        return self._session(lambda send: [send(*request) for request in requests])

    def _session(self, body: Any) -> Any:
        """Run ``body(send)`` where ``send(method, path, json)`` returns a response; the whole of it
        has ``orchestrator_deadline_s``. Transport failures and 5xx (a busy answer still busy at
        the deadline included) trip the breaker."""
        import httpx

        self.breaker.check()
        url = self.api_url
        deadline = time.monotonic() + self.settings.orchestrator_deadline_s
        sent = False

        def send(method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
            nonlocal sent
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpx.TimeoutException("deadline passed")
            sent = sent or method != "GET"
            response = client.request(method, f"{url}{path}", json=json, timeout=httpx.Timeout(left))
            # A busy Prefect (its database locked for a moment) says so: ask again within the deadline.
            # Every request here is safe to repeat (reads, idempotency keys, state proposals).
            while response.status_code in BUSY_STATUSES and deadline - time.monotonic() > BUSY_PAUSE_S:
                time.sleep(BUSY_PAUSE_S)
                response = client.request(
                    method, f"{url}{path}", json=json, timeout=httpx.Timeout(max(0.1, deadline - time.monotonic()))
                )
            if response.status_code in (401, 403):
                raise ServiceUnavailable(
                    f"the Prefect API at {url} refused the API's credentials (HTTP "
                    f"{response.status_code}): set CROPAI_PREFECT_AUTH_STRING to its "
                    "PREFECT_SERVER_API_AUTH_STRING"
                )
            if response.status_code >= 500:
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
            return response

        try:
            with httpx.Client(headers=self._headers()) as client:
                result = body(send)
        except httpx.TimeoutException:
            reason = f"Prefect at {url} did not answer within {self.settings.orchestrator_deadline_s:g} s"
            self.breaker.trip(reason)
            raise PrefectUnreachable(reason, maybe_done=sent) from None
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            reason = f"cannot reach the Prefect API at {url}: {exc}"
            self.breaker.trip(reason)
            raise PrefectUnreachable(reason, maybe_done=sent and isinstance(exc, httpx.HTTPStatusError)) from None
        self.breaker.reset()
        return result

    def check(self) -> None:
        """Prefect's health endpoint."""
        self._call([("GET", "/health", None)])[0].raise_for_status()

    def check_deployments(self) -> None:
        """Both deployments the API starts are registered; a ServiceUnavailable naming the missing ones."""
        names = [self.settings.analyze_deployment, self.settings.ingest_deployment]
        responses = self._call([("GET", f"/deployments/name/{name}", None) for name in names])
        missing = [name for name, response in zip(names, responses, strict=True) if response.status_code == 404]
        if missing:
            raise ServiceUnavailable(_not_registered(missing, self.api_url))

    def start_analysis(self, analysis_id: uuid.UUID, attempt: int, name: str, tags: list[str]) -> uuid.UUID:
        """Create a flow run of the analysis deployment; idempotent per analysis and attempt."""
        return self._run_deployment(
            self.settings.analyze_deployment,
            {"analysis_id": str(analysis_id), "attempt": attempt},
            name,
            tags,
            idempotency_key=f"analysis-{analysis_id}-{attempt}",
        )

    def start_ingest(
        self, source: str, band_mapping: list[str | None] | None, radiometric_offset: int, tags: list[str]
    ) -> uuid.UUID:
        parameters: dict[str, Any] = {"source": source}
        if band_mapping:
            parameters["band_mapping"] = band_mapping
        if radiometric_offset:
            parameters["radiometric_offset"] = radiometric_offset
        return self._run_deployment(self.settings.ingest_deployment, parameters, None, tags)

    def start_training(self, run_id: uuid.UUID, parameters: dict[str, Any], tags: list[str]) -> uuid.UUID:
        """Create a flow run of the training deployment for a training run; idempotent per run."""
        return self._run_deployment(
            self.settings.train_deployment,
            {**parameters, "training_run_id": str(run_id)},
            f"train-{run_id.hex[:8]}",
            tags,
            idempotency_key=f"training-{run_id}",
        )

    def _run_deployment(
        self,
        deployment: str,
        parameters: dict[str, Any],
        name: str | None,
        tags: list[str],
        idempotency_key: str | None = None,
    ) -> uuid.UUID:
        def create(send: Any) -> httpx.Response:
            found = send("GET", f"/deployments/name/{deployment}")
            if found.status_code == 404:
                raise ServiceUnavailable(_not_registered([deployment], self.api_url))
            found.raise_for_status()
            run = {
                "parameters": parameters,
                "tags": tags,
                "state": {"type": "SCHEDULED"},
                **({"name": name} if name else {}),
                **({"idempotency_key": idempotency_key} if idempotency_key else {}),
            }
            return send("POST", f"/deployments/{found.json()['id']}/create_flow_run", run)

        created = self._session(create)
        if created.status_code in (409, 422):
            # The deployment's parameter schema refused a value the API let through.
            detail = created.json().get("detail", created.text)
            raise InvalidInput(f"Prefect refused the parameters of {deployment}: {detail}")
        created.raise_for_status()
        return uuid.UUID(created.json()["id"])

    def flow_run_status(self, flow_run_id: uuid.UUID) -> FlowRunStatus | None:
        """The flow run's state, or None when Prefect no longer knows the run."""
        response = self._call([("GET", f"/flow_runs/{flow_run_id}", None)])[0]
        if response.status_code == 404:
            return None
        response.raise_for_status()
        run = response.json()
        state = run.get("state")
        if not state:
            return FlowRunStatus(run["name"], "PENDING", "Pending", None)
        entered = datetime.fromisoformat(state["timestamp"]) if state.get("timestamp") else None
        age = (datetime.now(UTC) - entered).total_seconds() if entered else 0.0
        return FlowRunStatus(
            run["name"], state["type"], state.get("name") or state["type"].title(), state.get("message"), age
        )

    def cancel(self, flow_run_id: uuid.UUID, reason: str) -> None:
        """Cancel a flow run as Prefect intends: propose Cancelling; the server makes a run that
        has no process yet Cancelled at once, and the runner of a started one kills its process."""
        self._set_state(flow_run_id, "CANCELLING", reason, force=False)

    def end(self, flow_run_id: uuid.UUID, state_type: str, reason: str) -> None:
        """Force a flow run whose runner is gone into a final state (CRASHED, CANCELLED)."""
        self._set_state(flow_run_id, state_type, reason, force=True)

    def _set_state(self, flow_run_id: uuid.UUID, state_type: str, message: str, force: bool) -> None:
        response = self._call(
            [
                (
                    "POST",
                    f"/flow_runs/{flow_run_id}/set_state",
                    {"state": {"type": state_type, "message": message}, "force": force},
                )
            ]
        )[0]
        if response.status_code != 404:  # a run Prefect forgot needs nothing more
            response.raise_for_status()


def _not_registered(deployments: list[str], api_url: str) -> str:
    return (
        f"the Prefect deployment(s) {', '.join(deployments)} are not registered at {api_url}: register them with "
        "`prefect deploy --all` (and run a `cropai` pool worker) or serve them with `cropai serve`"
    )
