"""A relay process following two `strata pds` and the official PDS, read by the Python SDK's
firehose client: every commit of every account, in order, once, across a relay crash."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
from atproto_firehose import AsyncFirehoseSubscribeReposClient, parse_subscribe_repos_message
from atproto_subscription.frames import MessageFrame

from tests.interop.peers import official_network
from tests.relay.xrpc import PdsUser, read_frames
from tests.services import free_port, running_pds, start_strata

POSTS_PER_PHASE = 3


async def hosts_connected(http: aiohttp.ClientSession, relay: str, password: str, n: int) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth("admin", password)}
    async with asyncio.timeout(30):
        while True:
            async with http.get(f"{relay}/admin/pds/list", headers=auth) as r:
                hosts = (await r.json())["hosts"]
            if sum(h["connected"] for h in hosts) == n:
                return
            await asyncio.sleep(0.1)


async def commits_by_account(http: aiohttp.ClientSession, pds: str) -> dict[str, list[str]]:
    """Each account's commit revs, from the PDS's own firehose."""
    out: dict[str, list[str]] = collections.defaultdict(list)
    for frame in await read_frames(http, pds, 0, 10_000, timeout=3):
        if frame.t == "#commit":
            out[frame.body["repo"]].append(frame.body["rev"])
    return out


async def caught_up(
    http: aiohttp.ClientSession, pdses: tuple[str, ...], received: list[tuple[int, str, str]]
) -> dict[str, list[str]]:
    """Wait until the consumer has as many commits as the PDSes sent; returns what they sent."""
    expected: dict[str, list[str]] = {}
    for pds in pdses:
        expected.update(await commits_by_account(http, pds))
    total = sum(len(revs) for revs in expected.values())
    async with asyncio.timeout(30):
        while len(received) < total:
            await asyncio.sleep(0.05)
    return expected


async def test_relay_delivers_every_commit_across_a_crash(
    tmp_path: Path, database_url: str | None
) -> None:
    received: list[tuple[int, str, str]] = []
    async with (
        official_network(tmp_path) as official,
        running_pds(tmp_path / "pds1", official.plc_url) as pds1,
        running_pds(tmp_path / "pds2", official.plc_url) as pds2,
        aiohttp.ClientSession() as http,
    ):
        port = free_port()
        relay_dir = tmp_path / "relay"
        args = ["--plc-url", official.plc_url, "--dev"]
        if database_url is not None:
            args += ["--database-url", database_url]
        for pds in (pds1.url, pds2.url, official.pds_url):
            args += ["--crawl", pds]
        relay_url = f"http://127.0.0.1:{port}"
        relay = await start_strata("relay", relay_dir, port, *args)
        password = json.loads((relay_dir / "secrets.json").read_text())["admin_password"]
        await hosts_connected(http, relay_url, password, 3)

        client = AsyncFirehoseSubscribeReposClient(
            {"cursor": 0}, base_uri=f"ws://127.0.0.1:{port}/xrpc"
        )

        async def on_message(message: MessageFrame) -> None:
            commit = parse_subscribe_repos_message(message)
            client.update_params({"cursor": commit.seq})
            if message.type == "#commit":
                received.append((commit.seq, commit.repo, commit.rev))

        consumer = asyncio.create_task(client.start(on_message))
        users = []
        for n, pds in enumerate((pds1.url, pds1.url, pds2.url, pds2.url, official.pds_url)):
            users.append(await PdsUser.create(http, pds, f"user{n}.test"))

        async def phase(label: str) -> None:
            for i in range(POSTS_PER_PHASE):
                await asyncio.gather(*(u.post(f"{label} {i}") for u in users))

        try:
            await phase("before")
            # A host the relay has not yet heard from is followed from its live tail (as the
            # reference relay does), so let the first events arrive before the crash.
            await caught_up(http, (pds1.url, pds2.url, official.pds_url), received)
            relay.send_signal(signal.SIGKILL)
            await relay.wait()
            await phase("while the relay is down")
            relay = await start_strata("relay", relay_dir, port, *args)
            await hosts_connected(http, relay_url, password, 3)
            await phase("after")

            expected = await caught_up(http, (pds1.url, pds2.url, official.pds_url), received)
            await asyncio.sleep(0.5)
        finally:
            await client.stop()
            consumer.cancel()
            relay.send_signal(signal.SIGTERM)
            await relay.wait()

    seqs = [seq for seq, _, _ in received]
    assert seqs == sorted(set(seqs)), "relay sequence numbers repeat or go backwards"
    delivered: dict[str, list[str]] = collections.defaultdict(list)
    for _, repo, rev in received:
        delivered[repo].append(rev)
    assert {u.did for u in users} <= set(delivered)
    assert delivered == expected
    per_account: dict[str, Any] = {did: len(revs) for did, revs in delivered.items()}
    assert all(count >= 3 * POSTS_PER_PHASE for count in per_account.values())
