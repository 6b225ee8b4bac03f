"""Dependencies every route declares as plain parameters: settings, a database
session, the store, Prefect, and the calling user with their role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.orchestrator import Orchestrator
from api.security import (
    SESSION_ENDED,
    STALE_API_KEY,
    InvalidToken,
    api_key_hash,
    api_key_prefix,
    read_token,
    same_secret,
)
from api.shared import SharedState
from api.ttlcache import TTLCache
from cropai.config import Settings
from cropai.db import ApiKey, Role, User, as_utc
from cropai.services import Services
from cropai.storage import ObjectStore

# Both show up in Swagger's "Authorize" dialog: a password login, or a machine key.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key from POST /auth/api-keys")
# A key's last use is recorded this coarsely, so that a busy key does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


# The dependencies that do no I/O are `async`: FastAPI then runs them on the event loop
# instead of handing each to the thread pool (a thread hop apiece, per request).


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request, in autocommit mode: reads need no BEGIN / ROLLBACK round trips and
    the routes' writes are single statements. It connects on its first query, in the route's thread;
    multi-statement writes go through ``cropai`` functions and their own transactions."""
    session = request.app.state.request_sessions()
    try:
        yield session
    finally:
        session.close()


async def get_store(services: Annotated[Services, Depends(get_services)]) -> ObjectStore:
    return services.store


async def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def get_current_user(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    token: Annotated[str | None, Security(oauth2_scheme)],
    api_key: Annotated[str | None, Security(api_key_scheme)],
) -> User:
    """The active user behind an API key (``X-API-Key``, or as a bearer token) or a JWT access token.

    Users behind tokens come from a short-lived cache (``USER_CACHE_TTL_S``), so most requests
    make no database round trip to authenticate. A token carries the user's token version it was
    issued under; once the version is raised (password change, deactivation, reactivation, logout
    everywhere) the token is refused: at once by the process that raised it, which forgets the
    user, and by other replicas within ``USER_CACHE_TTL_S``."""
    if api_key is None and token is not None and api_key_prefix(token):
        api_key, token = token, None
    if api_key is not None:
        user = await run_in_threadpool(_user_of_api_key, services.sessions, api_key)
    elif token is not None:
        try:
            claims = read_token(settings, token, "access")
        except InvalidToken as exc:
            raise _unauthorized(str(exc)) from None
        users: TTLCache[int, User | None] = request.app.state.users
        user = users.get(claims.user_id)
        if user is None or user.token_version < claims.version:  # a token newer than the cached user: reload
            user = await run_in_threadpool(_load_user, services.sessions, claims.user_id)
            users.put(claims.user_id, user)
        if user is not None and user.token_version != claims.version:
            raise _unauthorized(SESSION_ENDED)
    else:
        raise _unauthorized("not authenticated: log in at POST /auth/token or send an X-API-Key header")
    if user is None or not user.is_active:
        raise _unauthorized("account unknown or deactivated")
    request.state.user_id = user.id  # for the access log
    return user


# Users behind access tokens, by id, for a few seconds. A change made through this API
# process (its routes or its admin panel) forgets the user at once, and with Redis in every
# replica; one made elsewhere (straight in the database, another replica without Redis) is
# seen within the TTL.
USER_CACHE_TTL_S = 5.0


def active_users(shared: SharedState | None = None) -> TTLCache[int, User | None]:
    return TTLCache(USER_CACHE_TTL_S, name="users", shared=shared)


def _load_user(sessions: sessionmaker[Session], user_id: int) -> User | None:
    with sessions() as session:
        return session.get(User, user_id)  # detached on close, with its columns loaded


def _user_of_api_key(sessions: sessionmaker[Session], key: str) -> User | None:
    """The owner of ``key``, read afresh (keys are not cached): a key made under an older token
    version than its owner's (before a password change or deactivation) is refused."""
    prefix = api_key_prefix(key)
    if prefix is None:
        raise _unauthorized("malformed API key")
    digest = api_key_hash(key)
    now = datetime.now(UTC)
    with sessions() as session:
        for row in session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)):
            if not same_secret(row.key_hash, digest):
                continue
            if row.revoked_at is not None:
                raise _unauthorized("API key revoked")
            if row.expires_at is not None and as_utc(row.expires_at) <= now:
                raise _unauthorized("API key expired")
            user = session.get(User, row.user_id)
            if user is not None and row.token_version < user.token_version:
                raise _unauthorized(STALE_API_KEY)
            if row.last_used_at is None or now - as_utc(row.last_used_at) > LAST_USED_RESOLUTION:
                row.last_used_at = now
                session.commit()
            return user
    raise _unauthorized("unknown API key")


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(*roles: Role):
    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            allowed = " or ".join(role.value for role in roles)
            raise HTTPException(403, f"this needs the {allowed} role; you are {user.role.value}")
        return user

    return check


AdminUser = Annotated[User, Depends(require_role(Role.admin))]
Submitter = Annotated[User, Depends(require_role(Role.admin, Role.analyst))]


# The one visibility rule, for a row in hand and for a query: admins and viewers read every
# owner's analyses and fields; analysts only their own.


def sees_everything(user: User) -> bool:
    return user.role in (Role.admin, Role.viewer)


def can_see(user: User, owner_id: int | None) -> bool:
    """Whether ``user`` may see a row owned by ``owner_id``."""
    return sees_everything(user) or owner_id == user.id


def visible_to(user: User, owner_id: InstrumentedAttribute[int | None]) -> ColumnElement[bool]:
    """The SQL filter of the rows ``user`` may see, by their owner column (``Analysis.owner_id``)."""
    return true() if sees_everything(user) else owner_id == user.id


# Row ids as path parameters: bounded so that no value can overflow a database integer.
RowId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip")]
