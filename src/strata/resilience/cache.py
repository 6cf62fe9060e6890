"""A bounded cache that can serve stale entries while their source is failing.

Each entry is fresh for `fresh_for` seconds; after that it is still returned (marked stale, so the
caller refreshes it) until `serve_stale_for` seconds have passed. Negative results ("no such
thing") are kept only `negative_for` seconds, so a newly created identity shows up quickly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheHit(Generic[V]):
    """A cached value (None for a cached negative result) and its age in seconds."""

    value: V | None
    age: float
    fresh: bool


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V | None
    stored_at: float
    weight: int


class StaleCache(Generic[K, V]):
    """LRU cache of at most `capacity` entries with freshness, stale and negative lifetimes;
    with `weigh`, also at most `max_weight` in total (bytes, for cached responses)."""

    def __init__(
        self,
        capacity: int = 100_000,
        fresh_for: float = 3600.0,
        serve_stale_for: float = 86_400.0,
        negative_for: float = 60.0,
        weigh: Callable[[V], int] | None = None,
        max_weight: int = 0,
    ) -> None:
        self.capacity = capacity
        self.fresh_for = fresh_for
        self.serve_stale_for = serve_stale_for
        self.negative_for = negative_for
        self.weigh = weigh
        self.max_weight = max_weight
        self.weight = 0
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> CacheHit[V] | None:
        """The entry for `key` if it may still be served at `now`, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = now - entry.stored_at
        limit = self.negative_for if entry.value is None else self.serve_stale_for
        if age > limit:
            self.discard(key)
            return None
        self._entries.move_to_end(key)
        fresh_for = self.negative_for if entry.value is None else self.fresh_for
        return CacheHit(entry.value, age, age <= fresh_for)

    def put(self, key: K, value: V | None, now: float) -> None:
        """Store a value, or None for a negative result."""
        weight = self.weigh(value) if self.weigh is not None and value is not None else 0
        self.discard(key)
        if self.weigh is not None and weight > self.max_weight:
            return
        self._entries[key] = _Entry(value, now, weight)
        self.weight += weight
        while len(self._entries) > self.capacity or (
            self.weigh is not None and self.weight > self.max_weight
        ):
            _, evicted = self._entries.popitem(last=False)
            self.weight -= evicted.weight

    def discard(self, key: K) -> None:
        """Forget `key`, for example when its owner says it changed."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.weight -= entry.weight
