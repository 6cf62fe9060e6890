"""The hot-path cache: what every timeline repeats, kept in memory and dropped by the indexer.

A page of a timeline names the same few hundred accounts and posts again and again; building
their views from the index costs most of a request. The cache keeps the parts that do not
depend on the viewer (a post's record and references, an account's handle and profile, the
counts of likes, reposts, replies, quotes and followers), bounded by an estimate of their size.
Viewer state (likes, follows, blocks) is always read from the index.

The indexer names the keys its transaction changed (record URIs, account DIDs) once the
transaction has committed, and the cache drops them. A reader that loaded an entry from the
index while the indexer was changing it could put an old value back after the drop: each
reader takes `epoch` before reading, and `put_many` refuses the entries dropped since.

In a worker that serves the index another worker keeps (`--workers`), the drops arrive as
notifications (`strata.appview.invalidation`); while they cannot arrive, the cache is paused:
empty, and keeping nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Final

from prometheus_client import Counter, Gauge

LOOKUPS = Counter(
    "strata_appview_cache_lookups_total", "Hot-path cache lookups", ["kind", "outcome"]
)
SIZE = Gauge(
    "strata_appview_cache_bytes", "Estimated size of the hot-path cache (of every worker)",
    multiprocess_mode="livesum",
)  # fmt: skip

DEFAULT_MIB: Final = 128
DROPS_KEPT: Final = 65_536
"""Recent drops remembered by key; a reader older than all of them may put nothing."""
KINDS: Final = ("post", "actor", "post_counts", "actor_counts", "list", "labels")
ENTRY_OVERHEAD: Final = 400
"""Bytes an entry costs beyond the text it holds (dicts, strings, the LRU's links)."""


class HotCache:
    """Bounded LRU maps by kind (`KINDS`), safe to use from the server's loop and the
    indexer's thread at once."""

    def __init__(self, max_bytes: int = DEFAULT_MIB << 20) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.epoch = 0
        """Counts the indexer's drops; a reader notes it before it reads the index."""
        self._entries: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        """Every kind's entries in one LRU order, each with its size."""
        self._by_kind: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        """The same entries by kind and key, for lookups."""
        self._dropped: OrderedDict[str, int] = OrderedDict()
        """The epoch of each key's last drop, for the latest `DROPS_KEPT` keys dropped."""
        self._horizon = 0
        """Drops up to this epoch are no longer remembered by key."""
        self._paused = False
        """Keeps nothing while set: the drops of changes might not arrive."""
        self._lock = threading.Lock()
        self._hits = {kind: LOOKUPS.labels(kind, "hit") for kind in KINDS}
        self._misses = {kind: LOOKUPS.labels(kind, "miss") for kind in KINDS}

    def get_many(self, kind: str, keys: Iterable[str]) -> dict[str, Any]:
        """The cached entries of `kind` for those of `keys` that are cached."""
        entries = self._by_kind[kind]
        found: dict[str, Any] = {}
        with self._lock:
            for key in keys:
                value = entries.get(key)
                if value is not None:
                    self._entries.move_to_end((kind, key))
                    found[key] = value
        if found:
            self._hits[kind].inc(len(found))
        return found

    def put_many(
        self,
        kind: str,
        values: dict[str, Any],
        epoch: int,
        weigh: Callable[[Any], int] | None = None,
    ) -> None:
        """Keep `values` (read from the index when `epoch` was current); `weigh(value)` is an
        entry's size in bytes beyond the overhead."""
        self._misses[kind].inc(len(values))
        entries = self._by_kind[kind]
        with self._lock:
            if epoch < self._horizon or self._paused:
                return  # too old to tell which of these the indexer changed since
            for key, value in values.items():
                if self._dropped.get(key, 0) > epoch:
                    continue  # changed while it was being read: what was read may be older
                size = ENTRY_OVERHEAD + (weigh(value) if weigh is not None else 0)
                self._forget(kind, key)
                self._entries[(kind, key)] = (value, size)
                entries[key] = value
                self.size += size
            while self.size > self.max_bytes and self._entries:
                (old_kind, old_key), (_, evicted) = self._entries.popitem(last=False)
                del self._by_kind[old_kind][old_key]
                self.size -= evicted
        SIZE.set(self.size)

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop every entry of any kind for `keys` (URIs and DIDs the indexer changed)."""
        with self._lock:
            self.epoch += 1
            for key in keys:
                self._dropped[key] = self.epoch
                self._dropped.move_to_end(key)
                for kind in KINDS:
                    self._forget(kind, key)
            while len(self._dropped) > DROPS_KEPT:
                _, self._horizon = self._dropped.popitem(last=False)
        SIZE.set(self.size)

    def clear(self) -> None:
        """Drop every entry (for a change too large to name key by key); readers that started
        before may put nothing."""
        with self._lock:
            self._clear()
        SIZE.set(self.size)

    def pause(self) -> None:
        """Drop every entry and keep none until `resume`: drops may be missed meanwhile."""
        with self._lock:
            self._paused = True
            self._clear()
        SIZE.set(self.size)

    def resume(self) -> None:
        """Keep entries again, once drops arrive again; what readers read while paused
        (perhaps changed since, unannounced) is refused."""
        with self._lock:
            self._paused = False
            self._clear()
        SIZE.set(self.size)

    @property
    def paused(self) -> bool:
        return self._paused

    def _clear(self) -> None:
        self.epoch += 1
        self._horizon = self.epoch
        self._dropped.clear()
        self._entries.clear()
        for entries in self._by_kind.values():
            entries.clear()
        self.size = 0

    def _forget(self, kind: str, key: str) -> None:
        old = self._entries.pop((kind, key), None)
        if old is not None:
            del self._by_kind[kind][key]
            self.size -= old[1]
