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

# What a token, key or admin session issued before the user's token version was raised is told.
SESSION_ENDED = (
    "your session was ended (password changed, account deactivated or reactivated, or logged out "
    "everywhere); log in again at POST /auth/token"
)
STALE_API_KEY = "API key predates a password change or deactivation; create a new one"


class InvalidToken(Exception):
    """A token that is malformed, expired, of the wrong type or not ours."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str  # the token's own id: a refresh token's row in ``refresh_tokens``
    expires_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    version: int  # the user's token version when the token was issued
    jti: str


def issue_token(settings: Settings, user_id: int, token_type: TokenType, version: int) -> IssuedToken:
    """A signed token for ``user_id``, good while the user's token version is still ``version``."""
    now = datetime.now(UTC)
    lifetime = (
        timedelta(minutes=settings.access_token_minutes)
        if token_type == "access"
        else timedelta(days=settings.refresh_token_days)
    )
    jti = uuid.uuid4().hex
    claims = {
        "iss": ISSUER,
        "sub": str(user_id),
        "typ": token_type,
        "ver": version,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": jti,
    }
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)
    return IssuedToken(token, jti, now + lifetime)


def read_token(settings: Settings, token: str, token_type: TokenType) -> TokenClaims:
    """The claims of a valid token of ``token_type``; whether its version is still current
    is for the caller to check against the user."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "typ", "ver", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"invalid token: {exc}") from None
    if claims["typ"] != token_type:
        raise InvalidToken(f"a {claims['typ']} token cannot be used as a {token_type} token")
    try:
        return TokenClaims(int(claims["sub"]), int(claims["ver"]), str(claims["jti"]))
    except (TypeError, ValueError):
        raise InvalidToken("invalid token subject or version") from None


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
