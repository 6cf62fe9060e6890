"""Hosts' firehoses, identity lookups and fetches each have their own pool of connections in
the relay: hosts that fill theirs (hundreds of followed PDSes, or a few that hold connections
open and say nothing) do not make identity lookups or crawl checks wait."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.relay.forge import ForgedAccount, ForgedHost
from tests.relay.xrpc import followed
from tests.services import free_port, running_plc, running_relay

POOL = 3


@contextlib.asynccontextmanager
async def silent_hosts(count: int) -> AsyncIterator[list[str]]:
    """`count` hosts on 127.0.0.1 whose firehoses accept a subscriber and never send."""
    opened: list[web.WebSocketResponse] = []

    async def subscribe(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        opened.append(ws)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", subscribe)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    ports = [free_port() for _ in range(count)]
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield [f"http://localhost:{port}" for port in ports]
    finally:
        for ws in opened:
            await ws.close()
        await runner.cleanup()


async def test_a_full_firehose_pool_leaves_identity_lookups_and_crawls_alone(
    tmp_path: Path,
) -> None:
    other = ForgedHost()
    async with (
        running_plc(tmp_path / "plc") as plc,
        silent_hosts(POOL + 1) as hosts,
        other.serving(),
        aiohttp.ClientSession() as http,
    ):
        alice = await ForgedAccount.register(http, plc.url, "alice.test", other.url)
        async with running_relay(
            tmp_path / "relay", plc.url, crawl=tuple(hosts), host_connections=POOL
        ) as relay:
            await followed(relay.relay, POOL)
            streams = list(relay.relay.streams.values())
            # Every firehose connection is taken (one host waits for one); nothing else is.
            assert sum(s.connected for s in streams) == POOL
            started = time.monotonic()
            async with asyncio.timeout(5):
                document = (await relay.relay.resolver.resolve_did(alice.did)).value
            assert document.pds_endpoint == other.url
            async with http.post(
                f"{relay.url}/xrpc/com.atproto.sync.requestCrawl",
                json={"hostname": other.url},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                assert response.status == 200
            assert time.monotonic() - started < 5
            assert sum(s.connected for s in streams) == POOL
