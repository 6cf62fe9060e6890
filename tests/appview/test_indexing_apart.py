"""The AppView's indexer runs apart from the requests: while its write transaction waits on the
database, reads still answer at once, and what it writes afterwards reaches the cached views."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tests.appview.network import appview_network
from tests.appview.test_api import accounts, create, ref, view
from tests.services import eventually


async def test_reads_answer_while_the_indexer_waits_to_write(tmp_path: Path) -> None:
    async with appview_network(tmp_path) as network:
        alice, bob, carol = await accounts(network, "alice", "bob", "carol")
        post = await create(alice, "app.bsky.feed.post", {"text": "hello"})
        await create(bob, "app.bsky.graph.follow", {"subject": alice.did})

        async def timeline() -> dict[str, Any]:
            return await view(bob, "app.bsky.feed.getTimeline")

        async def shown() -> dict[str, Any] | None:
            feed = (await timeline())["feed"]
            return feed[0]["post"] if feed else None

        first = await eventually(shown, what="alice's post in bob's timeline")
        assert first["likeCount"] == 0  # now in the cache
        indexing = network.appview.appview.indexing
        assert indexing is not None and indexing.subscriber is not None
        assert threading.get_ident() != indexing._thread.ident

        # Another connection holds the write lock, as a long transaction would.
        other = sqlite3.connect(tmp_path / "appview" / "appview.sqlite", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            await create(carol, "app.bsky.feed.like", {"subject": ref(post)})
            slowest = 0.0
            for _ in range(15):
                started = time.monotonic()
                answer = await timeline()
                slowest = max(slowest, time.monotonic() - started)
                assert answer["feed"][0]["post"]["likeCount"] == 0
                await asyncio.sleep(0.05)
            assert slowest < 1.0
        finally:
            other.execute("COMMIT")
            other.close()

        async def liked() -> bool:
            return bool((await shown() or {}).get("likeCount") == 1)

        await eventually(liked, what="the like indexed, and the cached count dropped")
