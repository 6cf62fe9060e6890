"""`strata appview --workers 2` over one Postgres database: both workers answer alike, one
indexes, a change (indexed, or a bookmark written through another worker) is seen through every
worker even where the old value was cached, a dead worker is replaced, and SIGTERM stops them
all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from strata.appview.cli import appview_command
from tests.postgres import PostgresCluster
from tests.relay.xrpc import PdsUser
from tests.services import (
    eventually,
    free_port,
    get_ok,
    metric,
    running_pds,
    running_plc,
    running_relay,
    start_strata,
    stop_workers,
    worker_pids,
    worker_replaced,
)

pytestmark = pytest.mark.async_timeout(180)

NOW = "2026-11-21T00:00:00.000Z"


@contextlib.asynccontextmanager
async def pinned(url: str, worker: int) -> AsyncIterator[aiohttp.ClientSession]:
    """A session whose one kept-alive connection reaches worker `worker`."""
    for _ in range(50):
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        if (await get_ok(http, f"{url}/xrpc/_health"))["worker"] == worker:
            try:
                yield http
            finally:
                await http.close()
            return
        await http.close()
    raise AssertionError(f"no connection reached worker {worker}")


async def service_token(user: PdsUser, aud: str, lxm: str) -> str:
    """A service token for `aud`, from the user's PDS."""
    async with user.http.get(
        f"{user.pds}/xrpc/com.atproto.server.getServiceAuth",
        params={"aud": aud, "lxm": lxm},
        headers={"Authorization": f"Bearer {user.token}"},
    ) as resp:
        answer = await resp.json()
        assert resp.status == 200, answer
    return str(answer["token"])


@dataclass
class Workers:
    url: str
    port: int
    proc: asyncio.subprocess.Process
    relay: str
    alice: PdsUser
    http: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def appview_workers(tmp_path: Path, database: str) -> AsyncIterator[Workers]:
    """A directory, a PDS with one account, a relay, and `strata appview --workers 2`."""
    port = free_port()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(tmp_path / "relay", plc.url, crawl=(pds.url,)) as relay,
        aiohttp.ClientSession() as http,
    ):
        proc = await start_strata(
            "appview", tmp_path / "appview", port, "--database-url", database,
            "--workers", "2", "--relay", relay.url, "--plc-url", plc.url, "--dev",
        )  # fmt: skip
        try:
            alice = await PdsUser.create(http, pds.url, "alice.test")
            yield Workers(f"http://127.0.0.1:{port}", port, proc, relay.url, alice, http)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def post_seen(http: aiohttp.ClientSession, url: str, uri: str) -> dict[str, Any] | None:
    posts = (await get_ok(http, f"{url}/xrpc/app.bsky.feed.getPosts", uris=uri))["posts"]
    return posts[0] if posts else None


async def test_two_workers_serve_one_index(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    async with appview_workers(tmp_path, postgres_cluster.new_database()) as net:
        url, http, alice = net.url, net.http, net.alice
        workers = worker_pids(net.proc.pid)
        assert len(workers) == 2
        await alice.call(
            "com.atproto.repo.putRecord",
            {"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "self",
             "record": {"$type": "app.bsky.actor.profile", "displayName": "Alice"}},
        )  # fmt: skip
        post = await alice.post("hello from one index")
        await eventually(lambda: post_seen(http, url, post["uri"]), 20.0, "the post is indexed")

        # Fresh connections reach both workers, and every answer is the same.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as h:
            answering = {(await get_ok(h, f"{url}/xrpc/_health"))["worker"] for _ in range(40)}
            assert answering == {0, 1}
            answers = [await post_seen(h, url, post["uri"]) for _ in range(20)]
            assert all(answer == answers[0] for answer in answers)

        # One consumer of the relay's firehose: only the first worker indexes.
        consumers = 'strata_firehose_consumers{service="relay"}'
        assert await metric(http, net.relay, consumers) == 1.0

        async with pinned(url, 0) as first, pinned(url, 1) as second:
            # Each worker reads the post and the profile twice: cached from the second on.
            for session in (first, second) * 2:
                assert (await post_seen(session, url, post["uri"]) or {})["likeCount"] == 0
                profile = await get_ok(
                    session, f"{url}/xrpc/app.bsky.actor.getProfile", actor=alice.did
                )
                assert profile["displayName"] == "Alice"
            for session in (first, second):
                # The serving worker hears that the index is fresh from the indexing one.
                getposts = f"{url}/xrpc/app.bsky.feed.getPosts"
                async with session.get(getposts, params={"uris": post["uri"]}) as resp:
                    assert resp.status == 200
                    assert "strata-stale-seconds" not in resp.headers
            hits = 'strata_appview_cache_lookups_total{kind="post",outcome="hit"}'
            assert await metric(first, url, hits) >= 2  # one hit in each worker at least

            await alice.call(
                "com.atproto.repo.createRecord",
                {"repo": alice.did, "collection": "app.bsky.feed.like",
                 "record": {"$type": "app.bsky.feed.like", "createdAt": NOW,
                            "subject": {"uri": post["uri"], "cid": post["cid"]}}},
            )  # fmt: skip
            await alice.call(
                "com.atproto.repo.putRecord",
                {"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "self",
                 "record": {"$type": "app.bsky.actor.profile", "displayName": "Alice B."}},
            )  # fmt: skip
            for session in (first, second):

                async def liked(session: aiohttp.ClientSession = session) -> bool:
                    seen = await post_seen(session, url, post["uri"])
                    return seen is not None and seen["likeCount"] == 1

                async def renamed(session: aiohttp.ClientSession = session) -> bool:
                    profile = await get_ok(
                        session, f"{url}/xrpc/app.bsky.actor.getProfile", actor=alice.did
                    )
                    return bool(profile["displayName"] == "Alice B.")

                await eventually(liked, 10.0, "the like is seen through every worker")
                await eventually(renamed, 10.0, "the new name is seen through every worker")

            # A bookmark written through the second worker is counted by the first.
            for _ in range(2):
                assert (await post_seen(first, url, post["uri"]) or {})["bookmarkCount"] == 0
            nsid = "app.bsky.bookmark.createBookmark"
            token = await service_token(alice, f"did:web:localhost%3A{net.port}", nsid)
            async with second.post(
                f"{url}/xrpc/{nsid}",
                json={"uri": post["uri"], "cid": post["cid"]},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                assert resp.status == 200, await resp.text()

            async def bookmarked() -> bool:
                seen = await post_seen(first, url, post["uri"])
                return seen is not None and seen["bookmarkCount"] == 1

            await eventually(bookmarked, 10.0, "the bookmark is counted by the other worker")

        # The indexing worker dies: it is replaced, and indexing goes on.
        os.kill(workers[0], signal.SIGKILL)

        await worker_replaced(net.proc.pid, workers[0], 15.0)
        later = await alice.post("after the restart")
        await eventually(lambda: post_seen(http, url, later["uri"]), 20.0, "indexing goes on")
        assert await metric(http, net.relay, consumers) == 1.0

        await stop_workers(net.proc)


def test_workers_need_postgres(tmp_path: Path) -> None:
    result = CliRunner().invoke(appview_command, ["--workers", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--workers 2 needs --database-url" in result.output
