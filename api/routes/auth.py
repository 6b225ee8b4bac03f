"""Log in (OAuth2 password flow), refresh tokens, and manage one's own API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import func, select

from api.deps import CurrentUser, RowId, SessionDep, SettingsDep
from api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, RefreshRequest, TokenPair, UserOut
from api.security import InvalidToken, issue_token, new_api_key, read_token
from cropai.accounts import verify_password
from cropai.db import ApiKey, User

router = APIRouter(prefix="/auth", tags=["auth"])
MAX_KEYS_PER_USER = 50


def _tokens(settings: SettingsDep, user_id: int) -> TokenPair:
    access = issue_token(settings, user_id, "access")
    refresh = issue_token(settings, user_id, "refresh")
    return TokenPair(access_token=access.token, refresh_token=refresh.token,
                     expires_in=settings.access_token_minutes * 60)  # fmt: skip


@router.post("/token", response_model=TokenPair, summary="Log in with email and password")
def login(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> TokenPair:
    """OAuth2 password flow: ``username`` is the account's email."""
    client = request.client.host if request.client else "unknown"
    request.app.state.login_limit.hit(f"{client}|{form.username.strip().lower()}")
    user = session.scalar(select(User).where(func.lower(User.email) == form.username.strip().lower()))
    if not verify_password(form.password, user.hashed_password if user else None) or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong email or password, or account deactivated",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    user.last_login_at = datetime.now(UTC)
    session.commit()
    return _tokens(settings, user.id)


@router.post("/refresh", response_model=TokenPair, summary="Trade a refresh token for new tokens")
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    try:
        user_id = read_token(settings, body.refresh_token, "refresh")
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "account unknown or deactivated")
    return _tokens(settings, user.id)


@router.get("/me", response_model=UserOut, summary="Who am I")
def me(user: CurrentUser) -> User:
    return user


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, summary="Create an API key")
def create_api_key(body: ApiKeyCreate, user: CurrentUser, session: SessionDep) -> ApiKeyCreated:
    """The key acts as you, with your role; it is shown in this response only."""
    active = session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
    )
    if active >= MAX_KEYS_PER_USER:
        raise HTTPException(409, f"you have {active} active API keys; revoke one first")
    made = new_api_key()
    expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row = ApiKey(user_id=user.id, name=body.name, prefix=made.prefix, key_hash=made.key_hash, expires_at=expires)
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
