"""SQLAdmin at ``/admin``: browse and correct the catalogue, for admins only.

Admins log in with their Crop AI email and password; the login lives in a signed
session cookie, which dies with the admin's token version. Password hashes, key hashes
and geometry blobs are never shown, and records written by the pipeline (scenes, runs,
model versions) are read-only.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from fastapi import FastAPI
from sqladmin import Admin, ModelView
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.errors import TooManyRequests
from api.ratelimit import LoginLimits
from api.ttlcache import TTLCache
from cropai.accounts import end_sessions, verify_password
from cropai.config import Settings
from cropai.db import Analysis, ApiKey, FieldParcel, IngestRun, ModelVersion, Role, Scene, User
from cropai.services import Services


class AdminLogin(AuthenticationBackend):
    """The admin panel's login: a signed session cookie holding the admin's id and token version,
    refused once the version is raised (password change, deactivation, logout everywhere)."""

    def __init__(self, settings: Settings, services: Services, login_limits: LoginLimits) -> None:
        super().__init__(
            secret_key=settings.secret_key.get_secret_value(),
            same_site="strict",
            https_only=settings.environment == "production",
            max_age=8 * 3600,
        )
        self.services = services
        self.login_limits = login_limits  # shared with POST /auth/token

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        email, password = str(form.get("username", "")).strip().lower(), str(form.get("password", ""))
        try:
            self.login_limits.hit(request, email)
        except TooManyRequests as exc:
            # Answered here: an exception would leave sqladmin's sub-app as a 500.
            return PlainTextResponse(
                f"too many {exc}; try again in {exc.retry_after_s} s",
                status_code=429,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        admin = await asyncio.to_thread(self._admin_with_password, email, password)
        if admin is None:
            return False
        user_id, token_version = admin
        request.session.update({"user_id": user_id, "token_version": token_version})
        return True

    def _admin_with_password(self, email: str, password: str) -> tuple[int, int] | None:
        with self.services.sessions() as session:
            user = session.scalar(select(User).where(func.lower(User.email) == email))
            ok = verify_password(password, user.hashed_password if user else None)
            if user is None or not ok or not user.is_active or user.role != Role.admin:
                return None
            return user.id, user.token_version

    async def logout(self, request: Request) -> bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> bool:
        user_id, token_version = request.session.get("user_id"), request.session.get("token_version")
        if user_id is None or token_version is None:
            return False
        return await asyncio.to_thread(self._still_admin, int(user_id), int(token_version))

    def _still_admin(self, user_id: int, token_version: int) -> bool:
        with self.services.sessions() as session:
            user = session.get(User, user_id)
            return (
                user is not None and user.is_active and user.role == Role.admin and user.token_version == token_version
            )


class UserAdmin(ModelView, model=User):
    column_list = [User.id, User.email, User.full_name, User.role, User.is_active, User.last_login_at]
    column_searchable_list = [User.email, User.full_name]
    column_details_exclude_list = [User.hashed_password]
    form_columns = [User.full_name, User.role, User.is_active]
    can_create = False  # accounts are made with a hashed password: POST /users or `cropai users create`
    icon = "fa-solid fa-user"

    users: ClassVar[TTLCache[int, User | None] | None] = None  # the API's, set by mount_admin

    async def on_model_change(self, data: dict, model: User, is_created: bool, request: Request) -> None:
        # As PATCH /users: a deactivation or reactivation ends the account's sessions.
        if "is_active" in data and bool(data["is_active"]) != model.is_active:
            end_sessions(model)

    async def after_model_change(self, data: dict, model: User, is_created: bool, request: Request) -> None:
        # Committed: the API's cached account is dropped (in every replica with Redis), so a
        # deactivation or a new role applies to the next request.
        if self.users is not None:
            self.users.forget(model.id)


class ApiKeyAdmin(ModelView, model=ApiKey):
    name_plural = "API keys"
    column_list = [
        ApiKey.id,
        ApiKey.user_id,
        ApiKey.name,
        ApiKey.prefix,
        ApiKey.created_at,
        ApiKey.last_used_at,
        ApiKey.expires_at,
        ApiKey.revoked_at,
    ]
    column_details_exclude_list = [ApiKey.key_hash]
    form_columns = [ApiKey.revoked_at]
    can_create = False
    icon = "fa-solid fa-key"


class AnalysisAdmin(ModelView, model=Analysis):
    name_plural = "Analyses"
    column_list = [
        Analysis.id,
        Analysis.name,
        Analysis.owner_id,
        Analysis.status,
        Analysis.model_ref,
        Analysis.start_date,
        Analysis.end_date,
        Analysis.aoi_area_ha,
        Analysis.created_at,
    ]
    column_searchable_list = [Analysis.name]
    column_sortable_list = [Analysis.created_at, Analysis.status]
    column_details_exclude_list = [Analysis.aoi_geojson]
    form_columns = [Analysis.name, Analysis.status, Analysis.status_reason]
    can_create = False
    icon = "fa-solid fa-map"


class FieldAdmin(ModelView, model=FieldParcel):
    column_list = [FieldParcel.id, FieldParcel.name, FieldParcel.owner_id, FieldParcel.external_id, FieldParcel.area_ha]
    column_searchable_list = [FieldParcel.name, FieldParcel.external_id]
    column_details_exclude_list = [FieldParcel.geometry_geojson]
    form_columns = [FieldParcel.name]
    can_create = False
    icon = "fa-solid fa-seedling"


class SceneAdmin(ModelView, model=Scene):
    column_list = [
        Scene.id,
        Scene.scene_id,
        Scene.version,
        Scene.platform,
        Scene.acquired_at,
        Scene.cloud_fraction,
        Scene.crs,
    ]
    column_searchable_list = [Scene.scene_id]
    column_sortable_list = [Scene.acquired_at, Scene.cloud_fraction]
    column_details_exclude_list = [Scene.footprint_geojson]
    can_create = can_edit = False
    icon = "fa-solid fa-satellite"


class ModelVersionAdmin(ModelView, model=ModelVersion):
    column_list = [
        ModelVersion.id,
        ModelVersion.name,
        ModelVersion.version,
        ModelVersion.format,
        ModelVersion.created_at,
    ]
    can_create = can_edit = can_delete = False  # versions are immutable; register them with `cropai models register`
    icon = "fa-solid fa-brain"


class IngestRunAdmin(ModelView, model=IngestRun):
    column_list = [
        IngestRun.id,
        IngestRun.source,
        IngestRun.status,
        IngestRun.started_at,
        IngestRun.ingested,
        IngestRun.skipped,
        IngestRun.rejected,
    ]
    can_create = can_edit = can_delete = False
    icon = "fa-solid fa-inbox"


def mount_admin(
    app: FastAPI,
    settings: Settings,
    services: Services,
    login_limits: LoginLimits,
    users: TTLCache[int, User | None],
) -> Admin:
    """Mount the panel at ``/admin``; its logins count against ``login_limits`` with ``POST /auth/token``'s,
    and an account it changes is dropped from ``users``, the API's cache of accounts."""
    admin = Admin(
        app,
        session_maker=services.sessions,
        title="Crop AI admin",
        authentication_backend=AdminLogin(settings, services, login_limits),
    )
    users_view = type("UserAdmin", (UserAdmin,), {"users": users})  # this app's cache, not a global one
    for view in (users_view, ApiKeyAdmin, AnalysisAdmin, FieldAdmin, SceneAdmin, ModelVersionAdmin, IngestRunAdmin):
        admin.add_view(view)
    return admin
