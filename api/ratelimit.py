"""Sliding-window rate limits kept in the API process.

One window per key (an account or a client address for logins, a user for submissions).
Limits are per API process: behind several replicas, each allows the rate, which
is what a per-instance guard against scripts and password guessing needs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from starlette.requests import Request

from api.errors import TooManyRequests
from api.proxies import client_address, trusted_proxies
from cropai.config import Settings

WINDOW_S = 60.0
MAX_KEYS = 100_000  # forget the oldest keys beyond this, so memory stays bounded


class RateLimit:
    def __init__(self, what: str, per_minute: int) -> None:
        self.what = what
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Count one event for ``key``; raise :class:`TooManyRequests` past the limit."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - WINDOW_S:
                hits.popleft()
            self._hits[key] = hits  # re-inserted: dict order is least recently used first
            if len(hits) >= self.per_minute:
                raise TooManyRequests(self.what, max(1, math.ceil(hits[0] + WINDOW_S - now)))
            hits.append(now)
            if len(self._hits) > MAX_KEYS:
                del self._hits[next(iter(self._hits))]


class LoginLimits:
    """Login attempts, counted twice: per account from all clients (guessing one account's
    password from many addresses) and per client for all accounts (one address trying a
    password on many accounts). ``POST /auth/token`` and ``/admin/login`` share them."""

    def __init__(self, per_account: RateLimit, per_client: RateLimit, trusted: frozenset[str]) -> None:
        self.per_account = per_account
        self.per_client = per_client
        self.trusted = trusted

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        per_account = RateLimit("login attempts", settings.login_attempts_per_minute)
        per_client = RateLimit("login attempts from your address", settings.login_attempts_per_client_per_minute)
        return cls(per_account, per_client, trusted_proxies(settings))

    def hit(self, request: Request, email: str) -> None:
        """Count an attempt to log in as ``email``; raise :class:`TooManyRequests` past either limit."""
        self.per_client.hit(client_address(request, self.trusted))
        self.per_account.hit(email.strip().lower())
