"""User accounts: passwords hashed with argon2id (pwdlib), and account creation for
the CLI and the API alike."""

from __future__ import annotations

from pwdlib import PasswordHash
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cropai.db import Role, User, session_scope
from cropai.errors import InvalidInput

_passwords = PasswordHash.recommended()  # argon2id
# Verified against when the account does not exist, so both paths take as long.
_DUMMY_HASH = _passwords.hash("no-such-user")


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    if hashed is None:
        _passwords.verify(password, _DUMMY_HASH)
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
