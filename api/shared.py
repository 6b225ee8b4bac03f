"""What the API's replicas share through Redis (``CROPAI_REDIS_URL``), or keep per process
without it.

Rate limits count in Redis, so that two replicas allow the rate once, not twice. Caches keep
their entries in each process but check, per key, a generation number kept in Redis: a change
made through one replica (a deactivation, a password change) bumps it, and every replica
reloads at its next request. When Redis cannot be reached, each process falls back to its own
counts and caches with a logged warning and tries Redis again after ``RETRY_S``: an outage of
Redis never fails a request.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from limits.storage import MemoryStorage, RedisStorage, Storage

from cropai.db import masked_url

log = logging.getLogger(__name__)

RETRY_S = 30.0  # after Redis failed, how long each process counts alone before it tries again
TIMEOUT_S = 0.5  # a Redis that does not answer in this time is treated as gone
KEY_PREFIX = "cropai"


class SharedState:
    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        self.memory = MemoryStorage()
        self._redis: RedisStorage | None = None
        self._client: redis.Redis | None = None
        if redis_url:
            self._redis = RedisStorage(
                redis_url,
                key_prefix=f"{KEY_PREFIX}-limits",
                wrap_exceptions=True,
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
            )
            self._client = redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        """Whether Redis is configured and not known to be down."""
        return self._client is not None and time.monotonic() >= self._down_until

    def storage(self) -> Storage:
        """Where rate limits count now: Redis, or this process' memory."""
        return self._redis if self.shared and self._redis is not None else self.memory

    def lost(self, exc: BaseException) -> None:
        """Redis failed: count and cache in this process for a while, and say so once."""
        with self._lock:
            if time.monotonic() < self._down_until:
                return
            self._down_until = time.monotonic() + RETRY_S
        log.warning(
            "Redis at %s is unreachable (%s): rate limits and caches are this process' own for %.0f s",
            masked_url(self.redis_url),
            exc,
            RETRY_S,
        )

    def generation(self, cache: str, key: object) -> int | None:
        """The shared generation of a cache key (0 before any change); None without Redis."""
        if not self.shared or self._client is None:
            return None
        try:
            value = self._client.get(f"{KEY_PREFIX}:{cache}:{key}")
        except redis.RedisError as exc:
            self.lost(exc)
            return None
        return int(value or 0)  # type: ignore[arg-type]

    def bump(self, cache: str, key: object) -> None:
        """Tell every replica that a cache key changed."""
        if not self.shared or self._client is None:
            return
        try:
            self._client.incr(f"{KEY_PREFIX}:{cache}:{key}")
        except redis.RedisError as exc:
            self.lost(exc)
