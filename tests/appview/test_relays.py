"""The AppView's relay list: it reads the first relay that answers, moves to the next when that
one dies, and resumes from a durable cursor per relay after a restart."""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp

from strata.pds.config import AppView
from tests.appview.test_api import create, view
from tests.relay.xrpc import PdsUser
from tests.services import (
    eventually,
    free_port,
    running_appview,
    running_pds,
    running_plc,
    running_relay,
)


async def test_failover_between_relays_and_restart(tmp_path: Path) -> None:
    port = free_port()
    target = AppView(f"http://127.0.0.1:{port}", f"did:web:localhost%3A{port}")
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url, appviews=(target,)) as pds,
        running_relay(tmp_path / "b", plc.url, crawl=(pds.url,)) as relay_b,
        contextlib.AsyncExitStack() as first_relay,
        aiohttp.ClientSession() as http,
    ):
        relay_a = await first_relay.enter_async_context(
            running_relay(tmp_path / "a", plc.url, crawl=(pds.url,))
        )
        user = await PdsUser.create(http, pds.url, "user.test")

        async def has(*wanted: str) -> bool:
            try:
                body = await view(user, "app.bsky.feed.getAuthorFeed", actor=user.did)
            except AssertionError:
                return False
            return set(wanted) <= {i["post"]["record"]["text"] for i in body["feed"]}

        relays = (relay_a.url, relay_b.url)
        async with running_appview(tmp_path / "appview", plc.url, relays, port) as appview:
            subscriber = appview.appview.subscriber
            assert subscriber is not None
            await create(user, "app.bsky.feed.post", {"text": "via the first relay"})
            await eventually(lambda: has("via the first relay"), what="the first post")
            assert subscriber.current == 0

            await first_relay.aclose()
            await create(user, "app.bsky.feed.post", {"text": "after the first relay died"})
            await eventually(lambda: has("after the first relay died"), what="via the second")
            assert subscriber.current == 1

        # A restart on the same data resumes the second relay from its stored cursor.
        async with running_appview(tmp_path / "appview", plc.url, (relay_b.url,), port) as again:
            assert again.appview.indexer is not None
            cursor = await again.appview.indexer.load_cursor(relay_b.url)
            assert cursor is not None and cursor > 0
            await create(user, "app.bsky.feed.post", {"text": "after the restart"})
            everything = ("via the first relay", "after the first relay died", "after the restart")
            await eventually(lambda: has(*everything), what="all three posts")
            body = await view(user, "app.bsky.feed.getAuthorFeed", actor=user.did)
            assert len(body["feed"]) == 3
