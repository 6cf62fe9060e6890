"""The indexer and the built-in feeds on the database itself (SQLite, and Postgres when one is
configured): ranking, languages, follows, cursors, deletes, replays and bad records."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import REGISTRY

from strata.core.frames import Frame
from strata.database import Database
from strata.feedgen.algorithm import (
    Algorithm,
    BadCursor,
    FeedItem,
    ViewerRequired,
    decode_cursor,
    encode_cursor,
)
from strata.feedgen.feeds import FollowingFeed, HotFeed, LanguageFeed
from strata.feedgen.indexer import Indexer
from tests.feedgen.conftest import DatabaseUnderTest
from tests.feedgen.firehose import FOLLOW, LIKE, POST, REPOST, Repo, follow, like, post

NOW = 1_800_000_000_000
HOUR = 3_600_000


class Clock:
    """A settable clock in seconds, as `time.time` reads."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def posts_of(items: Sequence[str | FeedItem]) -> list[str]:
    return [item if isinstance(item, str) else item.post for item in items]


async def read_all(
    algorithm: Algorithm, db: Database, viewer: str | None, limit: int
) -> list[str | FeedItem]:
    """Every page of a feed, following cursors to the end."""
    out: list[str | FeedItem] = []
    cursor = None
    for _ in range(100):
        items, cursor = await algorithm.skeleton(db, viewer, limit, cursor)
        assert len(items) <= limit
        out.extend(items)
        if cursor is None:
            return out
    raise AssertionError("the feed never ended")


async def test_hot_ranks_by_decayed_score_and_pages_on_a_snapshot(
    database: DatabaseUnderTest,
) -> None:
    clock = Clock(NOW - 1000)
    author, fans = Repo("author"), Repo("fans")
    async with database.open() as db:
        indexer = Indexer(db, clock=clock)
        uris, frames = {}, []
        for name, age_hours in (("a", 1), ("b", 10), ("c", 2), ("old", 50)):
            uris[name], frame = author.create(POST, post(NOW - age_hours * HOUR))
            frames.append(frame)
        uris["reply"], frame = author.create(POST, post(NOW - HOUR, reply_to=uris["a"]))
        frames.append(frame)
        for name, likes in (("b", 5), ("c", 2), ("old", 100), ("reply", 10)):
            for _ in range(likes):
                frames.append(fans.create(LIKE, like(uris[name], NOW - HOUR))[1])
        frames.append(fans.create(REPOST, like(uris["c"], NOW - HOUR, REPOST))[1])
        await indexer.handle_batch("ws://relay", frames)

        # a: 1 / 3^1.8 = 0.14; b: 6 / 12^1.8 = 0.07; c: (2 + 2 + 1) / 4^1.8 = 0.41.
        # "old" is past the 48 h window and replies are not ranked.
        hot = HotFeed(clock=Clock(NOW), reuse_for=0)
        first, cursor = await hot.skeleton(db, None, 1, None)
        assert first == [uris["c"]] and cursor is not None

        # Likes arriving while someone scrolls do not reorder the pages they are reading.
        clock.ms = NOW + 5000
        await indexer.handle_batch(
            "ws://relay", [fans.create(LIKE, like(uris["b"], NOW))[1] for _ in range(50)]
        )
        second, cursor = await hot.skeleton(db, None, 1, cursor)
        third, cursor = await hot.skeleton(db, None, 1, cursor)
        assert (second, third, cursor) == ([uris["a"]], [uris["b"]], None)
        # A new ranking, computed without a cached snapshot, is the same at the same moment...
        again = HotFeed(clock=Clock(NOW), reuse_for=0)
        assert await read_all(again, db, None, 2) == [uris["c"], uris["a"], uris["b"]]
        # ...and a later one counts the new likes: 56 / 12^1.8 = 0.64.
        later = HotFeed(clock=Clock(NOW + 10_000), reuse_for=0)
        assert (await later.skeleton(db, None, 10, None))[0] == [uris["b"], uris["c"], uris["a"]]

        for bad in ("x", "1:", ":1", "-1:0", "1:2:3", "\uff11:2", "9" * 40 + ":0"):
            with pytest.raises(BadCursor):
                await hot.skeleton(db, None, 10, bad)


async def test_language_feeds_newest_first_with_keyset_cursors(
    database: DatabaseUnderTest,
) -> None:
    alice = Repo("alice")
    async with database.open() as db:
        indexer = Indexer(db, clock=Clock(NOW))
        frames: list[tuple[int, Frame]] = []
        english: list[str] = []
        # Several posts share a timestamp, so the cursor must order ties by URI.
        for i, langs in enumerate((["en"], ["en-GB"], ["en", "pt"], ["en"], ["en-US"])):
            uri, frame = alice.create(POST, post(NOW - (i // 2) * 1000, f"post {i}", langs))
            english.append(uri)
            frames.append(frame)
        portuguese, frame = alice.create(POST, post(NOW - HOUR, "olá", ["pt"]))
        frames.append(frame)
        frames.append(alice.create(POST, post(NOW, "no language"))[1])
        frames.append(alice.create(POST, post(NOW, "a reply", ["en"], reply_to=english[0]))[1])
        await indexer.handle_batch("ws://relay", frames)

        lang_en = LanguageFeed("en")
        assert lang_en.rkey == "lang-en"
        everything = await read_all(lang_en, db, None, 10)
        assert sorted(posts_of(everything)) == sorted(english) and len(everything) == 5
        assert await read_all(lang_en, db, None, 1) == everything
        assert await read_all(lang_en, db, None, 2) == everything
        assert posts_of(await read_all(LanguageFeed("pt"), db, None, 5)) == [
            english[2],
            portuguese,
        ]
        assert await read_all(LanguageFeed("en-gb"), db, None, 5) == [english[1]]
        assert await read_all(LanguageFeed("de"), db, None, 5) == []

        # Deleted posts leave; an updated post moves to its new language.
        await indexer.handle_batch("ws://relay", [alice.delete(english[0])])
        path = english[3].split("/", 3)[3]
        await indexer.handle_batch(
            "ws://relay", [alice.commit(("update", path, post(NOW - 1000, "now pt", ["pt"])))]
        )
        left = await read_all(lang_en, db, None, 10)
        assert english[0] not in left and english[3] not in left and len(left) == 3
        assert english[3] in await read_all(LanguageFeed("pt"), db, None, 10)

        for bad in ("nope", "12::not-a-uri", "-5::at://x", "1.5::at://x", "::at://x"):
            with pytest.raises(BadCursor):
                await lang_en.skeleton(db, None, 10, bad)


async def test_following_shows_posts_and_reposts_of_follows(database: DatabaseUnderTest) -> None:
    viewer, alice, bob, carol = Repo("viewer"), Repo("alice"), Repo("bob"), Repo("carol")
    async with database.open() as db:
        indexer = Indexer(db, clock=Clock(NOW))
        a1, f1 = alice.create(POST, post(NOW - 5000, "alice 1"))
        c1, f2 = carol.create(POST, post(NOW - 4000, "carol, not followed"))
        b1, f3 = bob.create(POST, post(NOW - 3000, "bob replies", reply_to=c1))
        r1, f4 = bob.create(REPOST, like(c1, NOW - 2000, REPOST))
        a2, f5 = alice.create(POST, post(NOW - 1000, "alice 2"))
        _, f6 = viewer.create(POST, post(NOW, "my own post"))
        _, f7 = viewer.create(FOLLOW, follow(alice.did, NOW))
        bob_follow, f8 = viewer.create(FOLLOW, follow(bob.did, NOW))
        _, f9 = viewer.create(FOLLOW, follow(bob.did, NOW))  # a duplicate follow
        await indexer.handle_batch("ws://relay", [f1, f2, f3, f4, f5, f6, f7, f8, f9])

        feed = FollowingFeed()
        expected = [FeedItem(a2), FeedItem(c1, r1), FeedItem(b1), FeedItem(a1)]
        assert await read_all(feed, db, viewer.did, 10) == expected
        assert await read_all(feed, db, viewer.did, 1) == expected
        assert FeedItem(c1, r1).view() == {
            "post": c1,
            "reason": {"$type": "app.bsky.feed.defs#skeletonReasonRepost", "repost": r1},
        }
        assert await read_all(feed, db, carol.did, 10) == []
        with pytest.raises(ViewerRequired):
            await feed.skeleton(db, None, 10, None)
        with pytest.raises(BadCursor):
            await feed.skeleton(db, viewer.did, 10, "garbage")

        # Unfollowing bob (both records) removes his posts and reposts.
        f10 = viewer.commit(("delete", bob_follow.split("/", 3)[3], None))
        await indexer.handle_batch("ws://relay", [f10])
        assert FeedItem(b1) in await read_all(feed, db, viewer.did, 10)  # the duplicate remains
        dup = [
            row[0] for row in await db.fetch("SELECT uri FROM follow WHERE subject = ?", bob.did)
        ]
        await indexer.handle_batch("ws://relay", [viewer.delete(uri) for uri in dup])
        assert await read_all(feed, db, viewer.did, 10) == [FeedItem(a2), FeedItem(a1)]


def counter(reason: str) -> float:
    return REGISTRY.get_sample_value("strata_feedgen_skipped_total", {"reason": reason}) or 0.0


async def test_cursors_replays_bad_records_and_deleted_accounts(
    database: DatabaseUnderTest,
) -> None:
    alice, bob = Repo("alice"), Repo("bob")
    async with database.open() as db:
        indexer = Indexer(db, clock=Clock(NOW))
        assert await indexer.load_cursor("ws://one") is None

        created, create = alice.create(POST, post(NOW, "first", ["en"]))
        await indexer.handle_batch("ws://one", [create])
        deleted = alice.delete(created)
        await indexer.handle_batch("ws://one", [deleted])
        assert await indexer.load_cursor("ws://one") == deleted[0]
        assert await indexer.load_cursor("ws://two") is None
        # Another relay replays the create: it is older than what was seen, so the post stays
        # deleted; that relay's own cursor is kept apart.
        await indexer.handle_batch("ws://two", [(7, create[1])])
        assert await indexer.load_cursor("ws://two") == 7
        assert await db.fetch("SELECT uri FROM post") == []

        before = {r: counter(r) for r in ("invalid record", "missing block", "unreadable blocks")}
        good = alice.create(POST, post(NOW, "fine"))[0]
        bad_path = f"{POST}/3jzfcijpj2z2a"
        wrong_type = f"{LIKE}/3jzfcijpj2z2b"
        seq, frame = alice.commit(
            ("create", good.split("/", 3)[3], post(NOW, "fine")),
            ("create", bad_path, {"$type": POST, "text": 5, "createdAt": "yesterday"}),
            ("create", "app.bsky.actor.profile/self", {"$type": "app.bsky.actor.profile"}),
        )
        frame.body["ops"].append(
            {"action": "create", "path": wrong_type, "cid": frame.body["ops"][0]["cid"]}
        )
        del frame.body["ops"][0]["cid"]  # a create without its record
        unreadable = bob.commit(("create", f"{POST}/3jzfcijpj2z2c", post(NOW)))
        unreadable[1].body["blocks"] = b"\x00not a car"
        await indexer.handle_batch("ws://one", [(seq, frame), unreadable])
        # The bad post, and the like whose block is the good post: valid CBOR, not a like.
        assert counter("invalid record") == before["invalid record"] + 2
        assert counter("missing block") == before["missing block"] + 1
        assert counter("unreadable blocks") == before["unreadable blocks"] + 1
        assert await db.fetch("SELECT uri FROM post") == []
        assert await db.fetch("SELECT uri FROM likes") == []

        # Everything a deleted account wrote goes; other accounts' records stay.
        kept, f1 = bob.create(POST, post(NOW, "bob stays", ["en"]))
        _, f2 = alice.create(POST, post(NOW, "alice goes", ["en"]))
        _, f3 = alice.create(LIKE, like(kept, NOW))
        _, f4 = alice.create(FOLLOW, follow(bob.did, NOW))
        account = Frame(1, "#account", {"did": alice.did, "active": False, "status": "deleted"})
        await indexer.handle_batch("ws://one", [f1, f2, f3, f4])
        assert len(await db.fetch("SELECT uri FROM post")) == 2
        await indexer.handle_batch("ws://one", [(10_000, account)])
        assert await indexer.load_cursor("ws://one") == 10_000
        assert [row[0] for row in await db.fetch("SELECT uri FROM post")] == [kept]
        assert [row[0] for row in await db.fetch("SELECT uri FROM post_lang")] == [kept]
        for table in ("likes", "follow"):
            assert await db.fetch(f"SELECT uri FROM {table}") == []


async def test_a_failed_write_is_retried_before_the_cursor_moves(
    database: DatabaseUnderTest,
) -> None:
    alice = Repo("alice")
    async with database.open() as db:
        indexer = Indexer(db, clock=Clock(NOW))
        write = indexer._write
        calls = 0

        async def flaky(relay: str, batch: list[tuple[int, Frame]]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("database went away")
            await write(relay, batch)

        indexer._write = flaky  # type: ignore[method-assign]
        uri, frame = alice.create(POST, post(NOW))
        await indexer.handle_batch("ws://one", [frame])
        assert calls == 2
        assert await indexer.load_cursor("ws://one") == frame[0]
        assert [row[0] for row in await db.fetch("SELECT uri FROM post")] == [uri]


def test_keyset_cursor_round_trip() -> None:
    cursor = encode_cursor(NOW, "at://did:plc:x/app.bsky.feed.post/3k")
    assert decode_cursor(cursor) == (NOW, "at://did:plc:x/app.bsky.feed.post/3k")
