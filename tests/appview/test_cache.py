"""The hot-path cache: bounded by size, dropped by key, and never given back a value that was
read before the indexer changed it."""

from __future__ import annotations

import pytest

from strata.appview import cache as cache_module
from strata.appview.cache import ENTRY_OVERHEAD, HotCache


def test_entries_by_kind_and_dropped_by_key() -> None:
    cache = HotCache()
    cache.put_many("post", {"at://a/p/1": "post 1", "at://a/p/2": "post 2"}, cache.epoch)
    cache.put_many("post_counts", {"at://a/p/1": (1, 0, 0, 0)}, cache.epoch)
    cache.put_many("actor", {"did:a": "alice"}, cache.epoch)
    assert cache.get_many("post", ["at://a/p/1", "at://a/p/3"]) == {"at://a/p/1": "post 1"}
    cache.invalidate(["at://a/p/1", "did:a"])
    assert cache.get_many("post", ["at://a/p/1", "at://a/p/2"]) == {"at://a/p/2": "post 2"}
    assert cache.get_many("post_counts", ["at://a/p/1"]) == {}
    assert cache.get_many("actor", ["did:a"]) == {}
    assert cache.size == ENTRY_OVERHEAD


def test_a_value_read_before_a_drop_is_not_kept() -> None:
    cache = HotCache()
    before = cache.epoch  # a reader starts reading the index...
    cache.invalidate(["at://a/p/1"])  # ...the indexer commits a change to p/1 and drops it...
    cache.put_many("post", {"at://a/p/1": "old", "at://a/p/2": "fine"}, before)
    assert cache.get_many("post", ["at://a/p/1", "at://a/p/2"]) == {"at://a/p/2": "fine"}
    after = cache.epoch  # a reader that started after the drop read the new value
    cache.put_many("post", {"at://a/p/1": "new"}, after)
    assert cache.get_many("post", ["at://a/p/1"]) == {"at://a/p/1": "new"}


def test_a_reader_older_than_every_remembered_drop_keeps_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "DROPS_KEPT", 2)
    cache = HotCache()
    before = cache.epoch
    for n in range(3):
        cache.invalidate([f"at://a/p/{n}"])
    cache.put_many("post", {"at://a/p/9": "unrelated"}, before)
    assert cache.get_many("post", ["at://a/p/9"]) == {}


def test_bounded_by_size_least_recently_used_first() -> None:
    cache = HotCache(max_bytes=3 * (ENTRY_OVERHEAD + 100))

    def size(value: object) -> int:
        return 100

    for n in range(3):
        cache.put_many("post", {f"p{n}": n}, cache.epoch, size)
    assert cache.get_many("post", ["p0"]) == {"p0": 0}  # p0 is now the most recent
    cache.put_many("post", {"p3": 3}, cache.epoch, size)
    assert set(cache.get_many("post", ["p0", "p1", "p2", "p3"])) == {"p0", "p2", "p3"}
    assert cache.size <= cache.max_bytes
    assert HotCache(max_bytes=0).get_many("post", ["p0"]) == {}


def test_cleared_and_paused() -> None:
    cache = HotCache()
    before = cache.epoch
    cache.put_many("post", {"at://a/p/1": "old"}, before)
    cache.clear()  # a change too large to name key by key
    assert cache.get_many("post", ["at://a/p/1"]) == {}
    assert cache.size == 0
    cache.put_many("post", {"at://a/p/2": "read before the clear"}, before)
    assert cache.get_many("post", ["at://a/p/2"]) == {}

    cache.pause()  # drops may be missed from here
    paused = cache.epoch
    cache.put_many("post", {"at://a/p/3": "maybe stale"}, paused)
    assert cache.get_many("post", ["at://a/p/3"]) == {}
    cache.resume()  # drops arrive again; what was read while paused is refused
    cache.put_many("post", {"at://a/p/3": "maybe stale"}, paused)
    assert cache.get_many("post", ["at://a/p/3"]) == {}
    cache.put_many("post", {"at://a/p/3": "fresh"}, cache.epoch)
    assert cache.get_many("post", ["at://a/p/3"]) == {"at://a/p/3": "fresh"}
