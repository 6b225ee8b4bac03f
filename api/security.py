"""Access and refresh tokens (JWT, HS256) and API keys.

API keys are 256-bit random secrets, so a fast SHA-256 digest is a safe thing to
store; passwords are low-entropy and get argon2's deliberately slow hash
(``cropai.accounts``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from cropai.config import Settings

ALGORITHM = "HS256"
ISSUER = "cropai"
API_KEY_PREFIX = "cak_"
TokenType = Literal["access", "refresh"]

class InvalidToken(Exception):
    """A token that is malformed, expired, of the wrong type or not ours."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


def issue_token(settings: Settings, user_id: int, token_type: TokenType) -> IssuedToken:
    now = datetime.now(UTC)
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if token_type == "access"
        else timedelta(days=settings.refresh_token_days)
    )
    claims = {
        "iss": ISSUER, "sub": str(user_id), "typ": token_type, "iat": now, "nbf": now,
        "exp": now + lifetime, "jti": uuid.uuid4().hex,
    }  # fmt: skip
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)
    return IssuedToken(token, now + lifetime)


def read_token(settings: Settings, token: str, token_type: TokenType) -> int:
    """The user id a valid token of ``token_type`` was issued to."""
    try:
        claims = jwt.decode(
            token, settings.secret_key.get_secret_value(), algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "typ"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from None
    if claims["typ"] != token_type:
        raise InvalidToken(f"a {claims['typ']} token cannot be used as a {token_type} token")
    try:
        return int(claims["sub"])
    except ValueError:
        raise InvalidToken("invalid token subject") from None


@dataclass(frozen=True)
class NewApiKey:
    key: str  # shown to its owner once
    prefix: str  # kept in clear to find the row and to tell keys apart in lists
    key_hash: str


def new_api_key() -> NewApiKey:
    prefix = secrets.token_hex(4)
    key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key, prefix, api_key_hash(key))


def api_key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, _ = key.removeprefix(API_KEY_PREFIX).partition("_")
    return prefix if sep and len(prefix) == 8 else None


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
