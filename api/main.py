"""The FastAPI application: ``create_app(settings)`` builds it; ``cropai api`` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from api.admin import mount_admin
from api.body_limit import BodyLimit
from api.deps import active_users
from api.errors import install_error_handlers
from api.observability import Metrics, RequestObservation
from api.orchestrator import Orchestrator
from api.ratelimit import LoginLimits, RateLimit
from api.reconcile import Sweeper
from api.routes import analyses, assessment, auth, fields, health, ingest, models, scenes, stac, users
from api.routes.analyses import finished_analyses
from api.shared import SharedState
from api.webapp import mount_web_app
from cropai.config import Settings, load_settings
from cropai.db import retry_budget
from cropai.services import services as services_for

DESCRIPTION = """Crop-type maps from satellite scenes.

Log in with **Authorize** (email + password), or send an API key in `X-API-Key`.
Submit an analysis with `POST /analyses`, poll the `Location` it returns until the
status is `completed`, then fetch `/map`, `/quicklook.png` and `/fields`.
The web map viewer is at [/app](/app/).
"""


# A request waits this long for an unreachable catalogue, then answers 503 (a flow run's
# bookkeeping waits up to a minute; a client with a request open should not).
REQUEST_DATABASE_WAIT_S = 5.0


class DatabaseWait:
    """Pure ASGI middleware: the request's routes (and the threads sync routes run in, which
    inherit the context) retry database writes for at most ``REQUEST_DATABASE_WAIT_S``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with retry_budget(REQUEST_DATABASE_WAIT_S):
            await self.app(scope, receive, send)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While the API serves, a background sweep settles runs whose runner died (``api.reconcile``)."""
    sweeper = Sweeper(app.state.orchestrator, app.state.settings, app.state.services.sessions)
    sweeper.start()
    try:
        yield
    finally:
        sweeper.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = FastAPI(
        title="Crop AI",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.services = services_for(settings)
    app.state.orchestrator = Orchestrator(settings)
    shared = SharedState(settings.redis_url)  # Redis, when replicas must agree on limits and caches
    app.state.login_limits = LoginLimits.from_settings(settings, shared)  # POST /auth/token and /admin/login
    app.state.submit_limit = RateLimit("analysis submissions", settings.submissions_per_minute, shared)
    app.state.metrics = Metrics()
    app.state.users = active_users(shared)
    app.state.finished_analyses = finished_analyses()
    app.state.request_sessions = sessionmaker(
        app.state.services.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
    for module in (health, auth, users, scenes, fields, models, analyses, assessment, ingest, stac):
        app.include_router(module.router)
    install_error_handlers(app)
    mount_admin(app, settings, app.state.services, app.state.login_limits, app.state.users)
    mount_web_app(app, settings)
    # Innermost middleware, outside every route: 413s still carry CORS headers and are logged.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(DatabaseWait)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Location", "X-Request-ID"],
        )
    app.add_middleware(RequestObservation, metrics=app.state.metrics)
    return app
