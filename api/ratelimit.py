"""Sliding-window rate limits kept in the API process.

One window per key (a client and account for logins, a user for submissions).
Limits are per API process: behind several replicas, each allows the rate, which
is what a per-instance guard against scripts and password guessing needs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from api.errors import TooManyRequests

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
