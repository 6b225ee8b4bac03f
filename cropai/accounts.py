"""User accounts: the rules a new account's fields follow, passwords hashed with argon2id
(pwdlib), account creation for the CLI and the API alike, and the records that let sessions
be ended: token versions and refresh tokens."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from pwdlib import PasswordHash
from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from cropai.db import RefreshToken, Role, User, session_scope
from cropai.errors import InvalidInput

PASSWORD_MIN_CHARS = 10  # shorter ones fall to guessing
PASSWORD_MAX_CHARS = 256  # argon2 hashes any length: the bound caps the work one login asks of the server
FULL_NAME_MAX_CHARS = 200  # the users.full_name column

_passwords = PasswordHash.recommended()  # argon2id


def password_problem(password: str) -> str | None:
    """What makes ``password`` unfit for an account, or None when nothing does."""
    if len(password) < PASSWORD_MIN_CHARS:
        return f"a password needs at least {PASSWORD_MIN_CHARS} characters (this one has {len(password)})"
    if len(password) > PASSWORD_MAX_CHARS:
        return f"a password may have at most {PASSWORD_MAX_CHARS} characters (this one has {len(password)})"
    return None


def account_problems(email: str, password: str, role: str, full_name: str = "") -> list[str]:
    """Every rule a new account's fields break, the API's and the CLI's alike; empty when none.
    The email is checked as the API's ``EmailStr`` checks it: its form only, no DNS lookup."""
    problems = []
    try:
        validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        problems.append(f"{email!r} is not a valid email address: {exc}")
    if problem := password_problem(password):
        problems.append(problem)
    if role not in set(Role):
        problems.append(f"role {role!r}: expected one of {', '.join(Role)}")
    if len(full_name) > FULL_NAME_MAX_CHARS:
        problems.append(f"a full name may have at most {FULL_NAME_MAX_CHARS} characters")
    return problems


def hash_password(password: str) -> str:
    return _passwords.hash(password)


@cache
def _dummy_hash() -> str:
    # Hashed on first need, not at import: every `cropai` command imports this module.
    return _passwords.hash("no-such-user")


def verify_password(password: str, hashed: str | None) -> bool:
    if hashed is None:
        # Verified against when the account does not exist, so both paths take as long.
        _passwords.verify(password, _dummy_hash())
        return False
    return _passwords.verify(password, hashed)


def create_user(
    sessions: sessionmaker[Session], email: str, password: str, role: Role | str = Role.analyst, full_name: str = ""
) -> User:
    email = email.strip().lower()
    with session_scope(sessions) as session:
        if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
            raise InvalidInput(f"a user with email {email} exists already")
        user = User(email=email, full_name=full_name, role=Role(role), hashed_password=hash_password(password))
        session.add(user)
    return user


# --- sessions: token versions and refresh-token families ---------------------------------

# Bulk statements leave loaded rows alone: matching them in Python would compare SQLite's naive
# datetimes with aware ones, and nothing reads those rows afterwards.
UNSYNCHRONIZED = {"synchronize_session": False}


def end_sessions(user: User) -> None:
    """Raise ``user``'s token version on its next flush, so that every token, refresh token, API key
    and admin-panel session issued before is refused. Done in SQL, so concurrent raises both count."""
    user.token_version = User.token_version + 1


def end_sessions_of(sessions: sessionmaker[Session], user_id: int) -> None:
    """:func:`end_sessions` for a user who is not loaded, in a transaction of its own."""
    with session_scope(sessions) as session:
        session.execute(update(User).where(User.id == user_id).values(token_version=User.token_version + 1))


def record_refresh_token(session: Session, jti: str, family: str, user_id: int, expires_at: datetime) -> None:
    """Add an issued refresh token to its family; the user's expired ones are dropped on the way."""
    expired = delete(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.expires_at < datetime.now(UTC))
    session.execute(expired, execution_options=UNSYNCHRONIZED)
    session.add(RefreshToken(jti=jti, family=family, user_id=user_id, expires_at=expires_at))


class Rotation(enum.Enum):
    """What presenting a refresh token did."""

    rotated = "rotated"  # spent; its successor joined the family
    unknown = "unknown"  # never issued to this user (or dropped after expiring)
    reused = "reused"  # spent before: a copy is about, so the whole family was revoked
    revoked = "revoked"  # its family had been revoked (a logout or a reuse)


def rotate_refresh_token(
    sessions: sessionmaker[Session], jti: str, user_id: int, successor_jti: str, successor_expires_at: datetime
) -> Rotation:
    """Spend refresh token ``jti`` and record its successor in the same family, in one transaction.

    Spending is a conditional UPDATE: of two requests racing with the same token, one spends it
    and the other finds it spent, which counts as reuse and revokes the family."""
    now = datetime.now(UTC)
    with session_scope(sessions) as session:
        spent = cast(
            "CursorResult[Any]",  # what an UPDATE returns; Session.execute is typed for any statement
            session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.jti == jti,
                    RefreshToken.user_id == user_id,
                    RefreshToken.used_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                )
                .values(used_at=now),
                execution_options=UNSYNCHRONIZED,
            ),
        )
        row = session.get(RefreshToken, jti)
        if row is None or row.user_id != user_id:
            return Rotation.unknown
        if spent.rowcount == 1:
            record_refresh_token(session, successor_jti, row.family, user_id, successor_expires_at)
            return Rotation.rotated
        outcome = Rotation.revoked if row.used_at is None else Rotation.reused
        _revoke_family(session, row.family, now)
        return outcome


def revoke_refresh_family(sessions: sessionmaker[Session], jti: str, user_id: int) -> bool:
    """Revoke the family (one login's chain of refresh tokens) that ``jti`` belongs to; False when
    ``jti`` is not one of ``user_id``'s refresh tokens."""
    with session_scope(sessions) as session:
        family = session.scalar(
            select(RefreshToken.family).where(RefreshToken.jti == jti, RefreshToken.user_id == user_id)
        )
        if family is None:
            return False
        _revoke_family(session, family, datetime.now(UTC))
        return True


def _revoke_family(session: Session, family: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now),
        execution_options=UNSYNCHRONIZED,
    )
