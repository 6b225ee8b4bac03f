"""A thread-safe cache whose entries expire: the API keeps users and finished analyses'
answers in it for a few seconds, so that polling clients cost no database work. Expiry and
the bound (least recently used out first) are cachetools'; with Redis
(:class:`api.shared.SharedState`) a key forgotten by one replica is forgotten by all at their
next read: each entry remembers the key's shared generation it was cached under."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import cachetools

from api.shared import SharedState

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 10_000,
        *,
        name: str = "cache",
        shared: SharedState | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.shared = shared or SharedState()
        self._entries: cachetools.TTLCache[K, tuple[int | None, V]] = cachetools.TTLCache(
            max_entries, ttl_s, timer=clock
        )
        self._lock = threading.Lock()  # cachetools' caches are not thread-safe; FastAPI's pool is

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return default
        generation = self.shared.generation(self.name, key)
        if generation is not None and generation != entry[0]:  # changed through another replica
            return default
        return entry[1]

    def put(self, key: K, value: V) -> None:
        generation = self.shared.generation(self.name, key)
        with self._lock:
            self._entries[key] = (generation, value)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
        self.shared.bump(self.name, key)
