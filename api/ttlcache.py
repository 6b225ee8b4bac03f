"""A small thread-safe cache whose entries expire: the API keeps users and finished
analyses' answers in it for a few seconds, so that polling clients cost no database work."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_MISSING = object()


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return default
        return entry[1]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # crude, but bounded; entries are cheap to rebuild
            self._entries[key] = (time.monotonic() + self.ttl_s, value)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
