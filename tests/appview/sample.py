"""A small, fixed network written straight into an AppView index, and every kind of view of it
for a few viewers: the hydration tests compare these views across engines, with the cache cold
and warm, and with the views recorded from the implementation that read each kind of object
with its own query (`views.json.gz`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from strata.appview.views import FeedItem, FeedViews
from strata.core.syntax.dates import format_millis
from strata.database import Database, Executor
from tests.feedgen.firehose import did

RECORDED = Path(__file__).with_name("views.json.gz")

PDS = "http://pds.example"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOB = {
    "$type": "blob",
    "ref": {"$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"},
    "mimeType": "image/png",
    "size": 68,
}
NAMES = ("alice", "bob", "carol", "dan", "erin", "frank")

Index = Callable[[Executor, str, str, str, dict[str, Any], str], Awaitable[None]]
"""`index_record(tx, uri, cid, collection, record, indexed_at)` of the implementation."""
MakeViews = Callable[[str | None], FeedViews]


class Writer:
    """Writes records with increasing times and made-up CIDs."""

    def __init__(self, tx: Executor, index: Index) -> None:
        self.tx = tx
        self.index = index
        self.n = 0

    async def write(self, name: str, collection: str, record: dict[str, Any]) -> str:
        self.n += 1
        at = format_millis(START_MS + self.n * 60_000)
        rkey = "self" if collection == "app.bsky.actor.profile" else f"3k{self.n:011d}"
        uri = f"at://{did(name)}/{collection}/{rkey}"
        cid = f"bafyrei{self.n:052d}"
        await self.index(
            self.tx, uri, cid, collection, {"$type": collection, "createdAt": at, **record}, at
        )
        return uri


async def build(db: Database, index: Index) -> dict[str, str]:
    """The network; returns the URIs the views are asked about, by name."""
    uris: dict[str, str] = {}
    async with db.transaction() as tx:
        for n, name in enumerate(NAMES):
            status = "takendown" if name == "frank" else "active"
            await tx.execute(
                "INSERT INTO actor (did, handle, pds, rev, status, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                did(name), f"{name}.test", PDS, "3k2a", status, format_millis(START_MS + n),
            )  # fmt: skip
        w = Writer(tx, index)
        post, like, repost = "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost"
        follow, block = "app.bsky.graph.follow", "app.bsky.graph.block"

        async def ref(key: str) -> dict[str, str]:
            row = await tx.fetchrow("SELECT cid FROM record WHERE uri = ?", uris[key])
            assert row is not None
            return {"uri": uris[key], "cid": str(row[0])}

        uris["root"] = await w.write("alice", post, {"text": "Hello world, said alice"})
        uris["mention"] = await w.write(
            "bob",
            post,
            {
                "text": "hi @alice.test see https://example.com",
                "facets": [
                    {
                        "index": {"byteStart": 3, "byteEnd": 14},
                        "features": [
                            {"$type": "app.bsky.richtext.facet#mention", "did": did("alice")}
                        ],
                    },
                    {
                        "index": {"byteStart": 19, "byteEnd": 38},
                        "features": [
                            {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}
                        ],
                    },
                ],
                "langs": ["en"],
            },
        )
        root = await ref("root")
        uris["reply"] = await w.write(
            "bob", post, {"text": "a reply", "reply": {"root": root, "parent": root}}
        )
        reply = await ref("reply")
        uris["nested"] = await w.write(
            "carol", post, {"text": "a reply to a reply", "reply": {"root": root, "parent": reply}}
        )
        uris["dan-reply"] = await w.write(
            "dan", post, {"text": "dan replies", "reply": {"root": root, "parent": root}}
        )
        uris["frank-reply"] = await w.write(
            "frank", post, {"text": "frank replies", "reply": {"root": root, "parent": root}}
        )
        uris["image"] = await w.write(
            "carol",
            post,
            {
                "text": "a picture",
                "embed": {
                    "$type": "app.bsky.embed.images",
                    "images": [
                        {"image": BLOB, "alt": "a dot", "aspectRatio": {"width": 1, "height": 1}}
                    ],
                },
            },
        )
        uris["external"] = await w.write(
            "dan",
            post,
            {
                "text": "a link card",
                "embed": {
                    "$type": "app.bsky.embed.external",
                    "external": {
                        "uri": "https://example.com",
                        "title": "Ex",
                        "description": "d",
                        "thumb": BLOB,
                    },
                },
            },
        )
        uris["generator"] = await w.write(
            "alice",
            "app.bsky.feed.generator",
            {
                "did": "did:web:feeds.example",
                "displayName": "Alice's feed",
                "description": "best",
                "avatar": BLOB,
            },
        )
        uris["quote"] = await w.write(
            "carol",
            post,
            {
                "text": "quoting",
                "embed": {"$type": "app.bsky.embed.record", "record": await ref("image")},
            },
        )
        uris["quote-media"] = await w.write(
            "erin",
            post,
            {
                "text": "quote with media",
                "embed": {
                    "$type": "app.bsky.embed.recordWithMedia",
                    "record": {"$type": "app.bsky.embed.record", "record": await ref("quote")},
                    "media": {
                        "$type": "app.bsky.embed.images",
                        "images": [{"image": BLOB, "alt": ""}],
                    },
                },
            },
        )
        uris["quote-feed"] = await w.write(
            "bob",
            post,
            {
                "text": "my feed",
                "embed": {"$type": "app.bsky.embed.record", "record": await ref("generator")},
            },
        )
        uris["quote-dan"] = await w.write(
            "erin",
            post,
            {
                "text": "quoting dan",
                "embed": {"$type": "app.bsky.embed.record", "record": await ref("external")},
            },
        )
        gone = {"uri": f"at://{did('bob')}/{post}/3kgone", "cid": root["cid"]}
        uris["quote-gone"] = await w.write(
            "alice",
            post,
            {
                "text": "quoting nothing",
                "embed": {"$type": "app.bsky.embed.record", "record": gone},
            },
        )
        uris["gated"] = await w.write("dan", post, {"text": "replies closed"})
        await w.write("dan", "app.bsky.feed.threadgate", {"post": uris["gated"], "allow": []})
        pinned = await ref("root")
        for name, profile in (
            ("alice", {"displayName": "Alice", "description": "first", "avatar": BLOB,
                       "banner": BLOB, "pinnedPost": pinned}),
            ("bob", {"displayName": "Bob"}),
            ("carol", {"description": "no name"}),
        ):  # fmt: skip
            await w.write(name, "app.bsky.actor.profile", profile)
        for name, target in (
            ("bob", "root"), ("carol", "root"), ("dan", "root"), ("alice", "image"),
            ("alice", "generator"), ("bob", "generator"), ("carol", "quote"),
        ):  # fmt: skip
            await w.write(name, like, {"subject": await ref(target)})
        for name, target in (("bob", "image"), ("carol", "root"), ("dan", "quote")):
            await w.write(name, repost, {"subject": await ref(target)})
        for name, other in (
            ("alice", "bob"), ("alice", "carol"), ("bob", "alice"), ("bob", "carol"),
            ("carol", "alice"), ("dan", "alice"), ("erin", "alice"), ("alice", "erin"),
        ):  # fmt: skip
            await w.write(name, follow, {"subject": did(other)})
        await w.write("bob", block, {"subject": did("dan")})
        await w.write("dan", block, {"subject": did("carol")})
        await w.write(
            "alice",
            "app.bsky.graph.list",
            {"name": "friends", "purpose": "app.bsky.graph.defs#curatelist"},
        )
    return uris


async def views(db: Database, uris: dict[str, str], make: MakeViews) -> dict[str, Any]:
    """Every kind of view, for each viewer (and none), as plain JSON."""
    posts = [uri for key, uri in uris.items() if key != "generator"]
    dids = [did(name) for name in NAMES]
    items = [
        FeedItem(post_uri, uri if kind == "repost" else None,
                 creator if kind == "repost" else None, sort_at)
        for uri, kind, post_uri, creator, sort_at in await db.fetch(
            "SELECT uri, type, post_uri, originator, sort_at FROM feed_item "
            "ORDER BY sort_at DESC, uri DESC"
        )
    ]  # fmt: skip
    out: dict[str, Any] = {}
    for viewer in (None, did("alice"), did("bob"), did("carol"), did("dan")):
        mine: dict[str, Any] = {}
        for level in ("basic", "view", "detailed"):
            mine[f"profiles {level}"] = await make(viewer).profiles(dids, level)
        mine["posts"] = await make(viewer).posts(posts)
        mine["feed"] = await make(viewer).feed(items)
        for key in ("root", "nested", "gated"):
            mine[f"thread {key}"] = await make(viewer).thread(uris[key], 6, 80)
        mine["thread root depth 1"] = await make(viewer).thread(uris["root"], 1, 0)
        mine["generators"] = await make(viewer).generators([uris["generator"]])
        out[viewer or "anonymous"] = mine
    # Through JSON, as clients see them (tuples and lists alike).
    loaded: dict[str, Any] = json.loads(json.dumps(out))
    return loaded
