"""A small thread-safe cache whose entries expire: the API keeps users and finished
analyses' answers in it for a few seconds, so that polling clients cost no database work.
With Redis (:class:`api.shared.SharedState`) a key forgotten by one replica is forgotten by
all at their next read: each entry remembers the key's shared generation it was cached under."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

from api.shared import SharedState

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, *, name: str = "cache", shared: SharedState | None = None
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.name = name
        self.shared = shared or SharedState()
        self._entries: dict[K, tuple[float, int | None, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return default
        generation = self.shared.generation(self.name, key)
        if generation is not None and generation != entry[1]:  # changed through another replica
            return default
        return entry[2]

    def put(self, key: K, value: V) -> None:
        generation = self.shared.generation(self.name, key)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # crude, but bounded; entries are cheap to rebuild
            self._entries[key] = (time.monotonic() + self.ttl_s, generation, value)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
        self.shared.bump(self.name, key)
