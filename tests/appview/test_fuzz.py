"""The indexer against hostile events: random bodies, random blocks, random records. It never
raises; a record either validates and is indexed or is skipped."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.appview.indexer import Indexer
from strata.appview.schema import MIGRATIONS
from strata.core import cbor
from strata.core.car import write_car
from strata.core.cid import CID
from strata.core.frames import Frame
from strata.database import SqliteDatabase, migrate

DID = "did:plc:fuzzfuzzfuzzfuzzfuzzfuzz"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=40),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
collections = st.sampled_from(
    ["app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.graph.follow", "app.bsky.actor.profile",
     "app.bsky.feed.repost", "app.bsky.graph.list", "app.bsky.feed.generator", "x.y.z"]
)  # fmt: skip


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    collection = draw(collections)
    record = draw(st.dictionaries(st.sampled_from(
        ["text", "createdAt", "subject", "reply", "embed", "facets", "langs", "did",
         "displayName", "name", "purpose"]), values, max_size=6))  # fmt: skip
    if draw(st.booleans()):
        record["createdAt"] = "2026-11-21T00:00:00.000Z"
    record["$type"] = collection
    return record


@st.composite
def commits(draw: st.DrawFn) -> Frame:
    blocks: list[tuple[CID, bytes]] = []
    ops: list[Any] = []
    for record in draw(st.lists(records(), max_size=4)):
        cid, block = cbor.encode_with_cid(record)
        blocks.append((cid, block))
        rkey = draw(st.sampled_from(["self", "3jzfcijpj2z2a", "a b", ""]))
        ops.append({"action": draw(st.sampled_from(["create", "update", "delete", "bogus"])),
                    "path": f"{record['$type']}/{rkey}", "cid": cid, "prev": None})  # fmt: skip
    ops += draw(st.lists(values, max_size=2))
    car = write_car([blocks[0][0]], blocks) if blocks else draw(st.binary(max_size=30))
    body: dict[str, Any] = {
        "repo": DID,
        "rev": draw(st.sampled_from(["3k2aaaaaaaa22", "3k2aaaaaaab22", "zzz"])),
        "since": None,
        "ops": draw(st.sampled_from([ops, "not a list", None])),
        "blocks": draw(st.sampled_from([car, b"", "text"])),
    }
    return Frame(1, draw(st.sampled_from(["#commit", "#account", "#identity", "#sync"])), body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commits(), min_size=1, max_size=5))
def test_hostile_events_never_break_the_indexer(frames: list[Frame]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            db = SqliteDatabase(Path(folder) / "index.sqlite")
            await migrate(db, MIGRATIONS, "appview")
            indexer = Indexer(db, resolver=None, session=None)
            await indexer.handle_batch("http://relay", list(enumerate(frames)))
            rows = await db.fetch("SELECT uri, json FROM record")
            for uri, _raw in rows:
                assert uri.startswith(f"at://{DID}/")
            await indexer.stop()
            await db.close()

    asyncio.run(run())
