"""User accounts, for admins."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import AdminUser, Limit, Offset, RowId, ServicesDep, SessionDep
from api.queries import paged
from api.schemas import Page, UserCreate, UserOut, UserUpdate
from cropai.accounts import create_user, end_sessions, hash_password
from cropai.db import Role, User
from cropai.errors import InvalidInput

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=Page[UserOut], summary="List users")
def list_users(admin: AdminUser, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> dict:
    rows, total = paged(session, select(User), limit, offset, User.id)
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
def add_user(body: UserCreate, admin: AdminUser, services: ServicesDep) -> User:
    try:
        return create_user(services.sessions, body.email, body.password, body.role, body.full_name)
    except (InvalidInput, IntegrityError):  # IntegrityError: the same email, created concurrently
        raise HTTPException(409, f"a user with email {body.email} exists already") from None


@router.get("/{user_id}", response_model=UserOut, summary="Read a user")
def read_user(user_id: RowId, admin: AdminUser, session: SessionDep) -> User:
    return _user(session, user_id)


@router.patch("/{user_id}", response_model=UserOut, summary="Change a user's name, role, password or activity")
def update_user(user_id: RowId, body: UserUpdate, admin: AdminUser, session: SessionDep, request: Request) -> User:
    """A new password, a deactivation and a reactivation each end the user's sessions: every
    token, refresh token, API key and admin-panel session issued before is refused."""
    user = _user(session, user_id)
    if user.id == admin.id and (body.role not in (None, Role.admin) or body.is_active is False):
        raise HTTPException(409, "you cannot demote or deactivate yourself; ask another admin")
    # Reactivation ends sessions too, so that nothing issued before a deactivation comes back.
    ends_sessions = body.password is not None or (body.is_active is not None and body.is_active != user.is_active)
    for name in ("full_name", "role", "is_active"):
        if (value := getattr(body, name)) is not None:
            setattr(user, name, value)
    if body.password is not None:
        user.hashed_password = hash_password(body.password)
    if ends_sessions:
        end_sessions(user)
    session.commit()  # one UPDATE: the change and the end of the sessions land together
    # Counts from now in this process, and with Redis in every replica; without it, theirs within the TTL.
    request.app.state.users.forget(user.id)
    return user


def _user(session: SessionDep, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"no user {user_id}")
    return user
