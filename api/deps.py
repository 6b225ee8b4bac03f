"""Dependencies every route declares as plain parameters: settings, a database
session, the store, Prefect, and the calling user with their role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.orchestrator import Orchestrator
from api.security import InvalidToken, api_key_hash, api_key_prefix, read_token, same_secret
from cropai.config import Settings
from cropai.db import ApiKey, Role, User
from cropai.services import Services
from cropai.storage import ObjectStore

# Both show up in Swagger's "Authorize" dialog: a password login, or a machine key.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
LAST_USED_RESOLUTION = timedelta(minutes=5)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key from POST /auth/api-keys")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


def get_store(services: Annotated[Services, Depends(get_services)]) -> ObjectStore:
    return services.store


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Security(oauth2_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> User:
    """The active user behind an API key (``X-API-Key``, or as a bearer token) or a JWT access token."""
    if api_key is None and token is not None and api_key_prefix(token):
        api_key, token = token, None
    if api_key is not None:
        user = _user_of_api_key(session, api_key)
    elif token is not None:
        try:
            user = session.get(User, read_token(settings, token, "access"))
        except InvalidToken as exc:
            raise _unauthorized(str(exc)) from None
    else:
        raise _unauthorized("not authenticated: log in at POST /auth/token or send an X-API-Key header")
    if user is None or not user.is_active:
        raise _unauthorized("account unknown or deactivated")
    request.state.user_id = user.id  # for the access log
    return user


def _user_of_api_key(session: Session, key: str) -> User | None:
    prefix = api_key_prefix(key)
    if prefix is None:
        raise _unauthorized("malformed API key")
    digest = api_key_hash(key)
    now = datetime.now(UTC)
    for row in session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)):
        if not same_secret(row.key_hash, digest):
            continue
        if row.revoked_at is not None:
            raise _unauthorized("API key revoked")
        if row.expires_at is not None and _aware(row.expires_at) <= now:
            raise _unauthorized("API key expired")
        if row.last_used_at is None or now - _aware(row.last_used_at) > LAST_USED_RESOLUTION:
            row.last_used_at = now  # coarse, so that a busy key does not write on every request
            session.commit()
        return session.get(User, row.user_id)
    raise _unauthorized("unknown API key")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(*roles: Role):  # noqa: ANN201 - a FastAPI dependency factory
    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            allowed = " or ".join(role.value for role in roles)
            raise HTTPException(403, f"this needs the {allowed} role; you are {user.role.value}")
        return user

    return check


AdminUser = Annotated[User, Depends(require_role(Role.admin))]
Submitter = Annotated[User, Depends(require_role(Role.admin, Role.analyst))]


def sees_everything(user: User) -> bool:
    """Admins and viewers read every owner's analyses and fields; analysts only their own."""
    return user.role in (Role.admin, Role.viewer)


# Row ids as path parameters: bounded so that no value can overflow a database integer.
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")]
