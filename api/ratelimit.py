"""Moving-window rate limits (the ``limits`` library): in Redis when ``CROPAI_REDIS_URL`` is
set, so that every replica counts the same events, else in the API process.

One window per key (an account or a client address for logins, a user for submissions).
Without Redis, limits are per API process: behind several replicas each allows the rate.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from api.errors import TooManyRequests
from api.proxies import client_address, trusted_proxies
from api.shared import SharedState
from cropai.config import Settings


class RateLimit:
    def __init__(self, what: str, per_minute: int, shared: SharedState | None = None) -> None:
        self.what = what
        self.per_minute = per_minute
        self.item = RateLimitItemPerMinute(per_minute)
        self.shared = shared or SharedState()

    def hit(self, key: str) -> None:
        """Count one event for ``key``; raise :class:`TooManyRequests` past the limit."""
        try:
            self._hit(MovingWindowRateLimiter(self.shared.storage()), key)
        except StorageError as exc:  # Redis went away: this process counts alone for a while
            self.shared.lost(exc)
            self._hit(MovingWindowRateLimiter(self.shared.memory), key)

    def _hit(self, limiter: MovingWindowRateLimiter, key: str) -> None:
        if not limiter.hit(self.item, self.what, key):
            reset = limiter.get_window_stats(self.item, self.what, key).reset_time
            raise TooManyRequests(self.what, max(1, math.ceil(reset - time.time())))


class LoginLimits:
    """Login attempts, counted twice: per account from all clients (guessing one account's
    password from many addresses) and per client for all accounts (one address trying a
    password on many accounts). ``POST /auth/token`` and ``/admin/login`` share them."""

    def __init__(self, per_account: RateLimit, per_client: RateLimit, trusted: frozenset[str]) -> None:
        self.per_account = per_account
        self.per_client = per_client
        self.trusted = trusted

    @classmethod
    def from_settings(cls, settings: Settings, shared: SharedState | None = None) -> LoginLimits:
        per_account = RateLimit("login attempts", settings.login_attempts_per_minute, shared)
        per_client = RateLimit(
            "login attempts from your address", settings.login_attempts_per_client_per_minute, shared
        )
        return cls(per_account, per_client, trusted_proxies(settings))

    def hit(self, request: Request, email: str) -> None:
        """Count an attempt to log in as ``email``; raise :class:`TooManyRequests` past either limit."""
        self.per_client.hit(client_address(request, self.trusted))
        self.per_account.hit(email.strip().lower())
