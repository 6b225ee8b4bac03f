"""Liveness, readiness and metrics for orchestrators, load balancers and monitoring.

Anyone may ask whether the API is up and ready; what is down and why (internal
addresses, error messages) and the metrics are for the monitoring token
(``CROPAI_MONITORING_TOKEN``) or an admin. These routes are ``async`` and do their
waiting in threads of their own, so a busy thread pool never delays a probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse, Response

from api.deps import (
    OrchestratorDep,
    ServicesDep,
    SettingsDep,
    api_key_scheme,
    get_current_user,
    oauth2_scheme,
)
from api.observability import Metrics
from api.security import same_secret
from cropai.db import Role, check_database
from cropai.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


async def may_monitor(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    token: Annotated[str | None, Security(oauth2_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> bool:
    """Whether the caller may read monitoring details: the monitoring token as a bearer token,
    or an admin's access token or API key. False without credentials or for other users;
    credentials that are not valid are a 401."""
    if token is None and api_key is None:
        return False
    expected = settings.monitoring_token.get_secret_value()
    if expected and token is not None and same_secret(token, expected):
        return True
    user = await get_current_user(request, services, settings, token, api_key)
    return user.role == Role.admin


MayMonitor = Annotated[bool, Depends(may_monitor)]


async def require_monitoring(request: Request, allowed: MayMonitor) -> None:
    if allowed:
        return
    if "authorization" in request.headers or "x-api-key" in request.headers:
        raise HTTPException(403, "this needs the monitoring token (CROPAI_MONITORING_TOKEN) or an admin's credentials")
    raise HTTPException(
        401,
        "not authenticated: send Authorization: Bearer <the monitoring token>, or an admin's access token or API key",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database, the object store, Prefect and its deployments are reachable")
async def readyz(
    services: ServicesDep, orchestrator: OrchestratorDep, settings: SettingsDep, detailed: MayMonitor
) -> JSONResponse:
    """200 when ready, else 503. The checks behind the answer are shown to monitoring only."""
    checks: dict[str, Callable[[], None]] = {
        "database": lambda: check_database(services.engine),
        "store": services.store.check,
        "prefect": orchestrator.check,
        "deployments": orchestrator.check_deployments,
    }
    outcomes = await asyncio.gather(*(_outcome(check, settings.connect_timeout_s) for check in checks.values()))
    results = dict(zip(checks, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    answer: dict[str, object] = {"status": "ready" if ready else "not ready"}
    if detailed:
        answer["checks"] = results
    return JSONResponse(answer, status_code=200 if ready else 503)


async def _outcome(check: Callable[[], None], timeout_s: float) -> str:
    """ "ok", or why the check failed; a check that hangs counts as failed after ``timeout_s``
    (its thread is left to finish on its own: a thread cannot be stopped)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check), timeout=timeout_s)
    except ServiceUnavailable as exc:
        return str(exc)
    except TimeoutError:
        return f"timed out after {timeout_s:g} s"
    return "ok"


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_monitoring)])
async def metrics(request: Request) -> Response:
    """Prometheus' text exposition of the API's metrics."""
    registry: Metrics = request.app.state.metrics
    return registry.exposition()
