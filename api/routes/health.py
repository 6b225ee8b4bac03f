"""Liveness and readiness for orchestrators and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import OrchestratorDep, ServicesDep
from cropai.db import check_database
from cropai.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database, the object store and Prefect are reachable")
def readyz(services: ServicesDep, orchestrator: OrchestratorDep) -> JSONResponse:
    checks = {"database": lambda: check_database(services.engine), "store": services.store.check,
              "prefect": orchestrator.check}  # fmt: skip
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except ServiceUnavailable as exc:
            results[name] = str(exc)
    ready = all(result == "ok" for result in results.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": results}, status_code=200 if ready else 503)
