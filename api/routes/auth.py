"""Log in (OAuth2 password flow), refresh and end sessions, and manage one's own API keys.

Each login starts a family of refresh tokens: a refresh spends the token presented and issues
the next of the family, and presenting a spent token again (a stolen copy) ends the family.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import func, select

from api.deps import CurrentUser, RowId, ServicesDep, SessionDep, SettingsDep
from api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, RefreshRequest, TokenPair, UserOut
from api.security import SESSION_ENDED, InvalidToken, TokenClaims, issue_token, new_api_key, read_token
from cropai.accounts import (
    Rotation,
    end_sessions_of,
    record_refresh_token,
    revoke_refresh_family,
    rotate_refresh_token,
    verify_password,
)
from cropai.config import Settings
from cropai.db import ApiKey, User

router = APIRouter(prefix="/auth", tags=["auth"])
MAX_KEYS_PER_USER = 50
REFRESH_REFUSED = {
    Rotation.unknown: "unknown refresh token; log in again at POST /auth/token",
    Rotation.reused: "refresh token reused: it had been traded for new tokens already, so it may have been copied; "
    "every session of this login was ended, log in again at POST /auth/token",
    Rotation.revoked: "refresh token revoked (its login was logged out, or one of its tokens was reused); "
    "log in again at POST /auth/token",
}


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


def _pair(settings: Settings, user: User) -> tuple[TokenPair, str, datetime]:
    """New tokens for ``user``, with the refresh token's id and expiry for its record."""
    access = issue_token(settings, user.id, "access", user.token_version)
    refresh = issue_token(settings, user.id, "refresh", user.token_version)
    pair = TokenPair(
        access_token=access.token, refresh_token=refresh.token, expires_in=settings.access_token_minutes * 60
    )
    return pair, refresh.jti, refresh.expires_at


@router.post("/token", response_model=TokenPair, summary="Log in with email and password")
def login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> TokenPair:
    """OAuth2 password flow: ``username`` is the account's email. Each login is a session of its
    own, ended by ``POST /auth/logout`` with its refresh token."""
    email = form.username.strip().lower()
    request.app.state.login_limits.hit(request, email)
    user = session.scalar(select(User).where(func.lower(User.email) == email))
    ok = verify_password(form.password, user.hashed_password if user else None)  # same time with no user
    if user is None or not ok or not user.is_active:
        raise _unauthorized("wrong email or password, or account deactivated")
    pair, jti, expires_at = _pair(settings, user)
    user.last_login_at = datetime.now(UTC)
    record_refresh_token(session, jti, family=uuid.uuid4().hex, user_id=user.id, expires_at=expires_at)
    session.commit()
    return pair


@router.post("/refresh", response_model=TokenPair, summary="Trade a refresh token for new tokens")
def refresh(body: RefreshRequest, session: SessionDep, services: ServicesDep, settings: SettingsDep) -> TokenPair:
    """Spends the refresh token: keep the new one, the old one is refused from now on (and
    presenting it again ends every session of this login)."""
    claims = _refresh_claims(settings, body.refresh_token, status.HTTP_401_UNAUTHORIZED)
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise _unauthorized("account unknown or deactivated")
    if user.token_version != claims.version:
        raise _unauthorized(SESSION_ENDED)
    pair, jti, expires_at = _pair(settings, user)
    rotation = rotate_refresh_token(services.sessions, claims.jti, user.id, jti, expires_at)
    if rotation is not Rotation.rotated:
        raise _unauthorized(REFRESH_REFUSED[rotation])
    return pair


@router.post("/logout", status_code=204, summary="End this login, or every session")
def logout(
    user: CurrentUser,
    services: ServicesDep,
    settings: SettingsDep,
    request: Request,
    body: RefreshRequest | None = None,
    everywhere: Annotated[bool, Query(description="end every session and API key of yours, on every device")] = False,
) -> None:
    """Send this login's refresh token to end it: the token and its successors are refused, API
    keys keep working, and the access token lapses at its expiry. ``everywhere=true`` ends every
    token, refresh token, admin-panel session and API key of yours at once."""
    if body is None and not everywhere:
        raise HTTPException(422, "send this login's refresh token in the body (refresh_token), or everywhere=true")
    if body is not None:
        claims = _refresh_claims(settings, body.refresh_token, 422)
        if not revoke_refresh_family(services.sessions, claims.jti, user.id) and not everywhere:
            raise HTTPException(404, "this refresh token is not one of your logins")
    if everywhere:
        end_sessions_of(services.sessions, user.id)
        request.app.state.users.forget(user.id)


def _refresh_claims(settings: Settings, token: str, refused_status: int) -> TokenClaims:
    try:
        return read_token(settings, token, "refresh")
    except InvalidToken as exc:
        raise HTTPException(refused_status, str(exc)) from None


@router.get("/me", response_model=UserOut, summary="Who am I")
def me(user: CurrentUser) -> User:
    return user


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, summary="Create an API key")
def create_api_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    """The key acts as you, with your role; it is shown in this response only. It stops working
    when your password changes, your account is deactivated or you log out everywhere."""
    active = (
        session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        )
        or 0
    )
    if active >= MAX_KEYS_PER_USER:
        raise HTTPException(409, f"you have {active} active API keys; revoke one first")
    made = new_api_key()
    expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    # The version the caller was authenticated under: a key made with a revoked token is born stale.
    row = ApiKey(
        user_id=user.id,
        name=body.name,
        prefix=made.prefix,
        key_hash=made.key_hash,
        expires_at=expires,
        token_version=user.token_version,
    )
    session.add(row)
    session.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=made.key)


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="List my API keys")
def list_api_keys(user: CurrentUser, session: SessionDep) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id)))


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke one of my API keys")
def revoke_api_key(key_id: RowId, user: CurrentUser, session: SessionDep) -> None:
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != user.id:
        raise HTTPException(404, f"you have no API key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.commit()
