"""Cache drops across worker processes: notifications sized for Postgres, and a follower that
pauses its cache whenever it might miss one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strata.appview.cache import HotCache
from strata.appview.invalidation import (
    EVERYTHING,
    MAX_NOTICES,
    PAYLOAD_BYTES,
    Announcer,
    CacheFollower,
    notices,
)
from strata.database import PostgresDatabase, open_database
from tests.postgres import PostgresCluster
from tests.services import eventually


def test_notices_fit_postgres_payloads() -> None:
    assert notices([]) == []
    assert notices(["did:plc:a", "at://did:plc:a/app.bsky.feed.post/1"]) == [
        "at://did:plc:a/app.bsky.feed.post/1\ndid:plc:a"
    ]
    keys = [f"at://did:plc:{n:024d}/app.bsky.feed.like/{n:013d}" for n in range(1000)]
    payloads = notices(keys)
    assert 1 < len(payloads) <= MAX_NOTICES
    assert all(len(p.encode()) < PAYLOAD_BYTES for p in payloads)
    assert sorted(k for p in payloads for k in p.split("\n")) == sorted(keys)
    # Too many to name: every cache is cleared instead.
    assert notices(keys * 20 + [f"did:plc:{n}" for n in range(20_000)]) == [EVERYTHING]
    assert notices(["x" * PAYLOAD_BYTES]) == [EVERYTHING]


async def test_follower_drops_and_pauses(postgres_cluster: PostgresCluster) -> None:
    db = await open_database(postgres_cluster.new_database(), Path("unused"))
    assert isinstance(db, PostgresDatabase)
    cache = HotCache()
    own, other = Announcer(shared=True), Announcer(shared=True)
    follower = CacheFollower(db, cache, own.origin)
    try:
        follower.start()
        assert cache.paused
        await asyncio.wait_for(follower.listening.wait(), 10)
        cache.put_many("post", {"at://a/p/1": 1, "at://a/p/2": 2}, cache.epoch)
        cache.put_many("actor", {"did:a": "alice"}, cache.epoch)

        async with db.transaction() as tx:
            # What this process changed it dropped itself: its own notices are skipped.
            await own(tx, ["at://a/p/2"])
            await other(tx, ["at://a/p/1"])
        await eventually(
            lambda: _async(cache.get_many("post", ["at://a/p/1", "at://a/p/2"])),
            5.0, "the named key is dropped", lambda found: found == {"at://a/p/2": 2},
        )  # fmt: skip
        async with db.transaction() as tx:
            await other(tx, [f"did:plc:{n:020d}" for n in range(MAX_NOTICES * 500)])
        await eventually(
            lambda: _async(cache.get_many("actor", ["did:a"])), 5.0, "everything is dropped",
            lambda found: found == {},
        )  # fmt: skip

        # The listening connection is lost: the cache keeps nothing until it listens again.
        cache.put_many("post", {"at://a/p/3": 3}, cache.epoch)
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE (query LIKE 'LISTEN%' OR query = 'SELECT 1') AND pid <> pg_backend_pid()"
        )
        await eventually(lambda: _async(cache.paused), 5.0, "the cache is paused")
        assert cache.get_many("post", ["at://a/p/3"]) == {}
        await eventually(lambda: _async(not cache.paused), 10.0, "the follower listens again")
        cache.put_many("post", {"at://a/p/4": 4}, cache.epoch)
        assert cache.get_many("post", ["at://a/p/4"]) == {"at://a/p/4": 4}
    finally:
        await follower.stop()
        await db.close()


async def _async(value: object) -> object:
    return value


async def test_staleness_is_reported_to_every_worker(postgres_cluster: PostgresCluster) -> None:
    db = await open_database(postgres_cluster.new_database(), Path("unused"))
    assert isinstance(db, PostgresDatabase)
    indexing, serving = Announcer(shared=True), Announcer(shared=True)
    cache = HotCache()
    follower = CacheFollower(db, cache, serving.origin)
    follower.start()
    reporting = asyncio.create_task(indexing.report(db, lambda: 42.0))
    try:
        await asyncio.wait_for(follower.listening.wait(), 10)
        await eventually(
            lambda: _async(follower.staleness()), 5.0, "the report arrives",
            lambda seconds: 42.0 <= seconds < 43.0,
        )  # fmt: skip
        assert not cache.paused  # a report is no drop
        # The indexing worker falls silent: the silence counts.
        reporting.cancel()
        await eventually(
            lambda: _async(follower.staleness()), 5.0, "the silence counts",
            lambda seconds: seconds > 43.5,
        )  # fmt: skip
    finally:
        reporting.cancel()
        await follower.stop()
        await db.close()
