"""Chains of commits across upstreams: a broken chain is resynchronised from the PDS, and two
relays that follow each other and the same PDS give one stream, even when one of them stops."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from pathlib import Path

import aiohttp

from strata.relay.ingest import DUPLICATES
from tests.relay.forge import ForgedAccount, ForgedHost
from tests.relay.xrpc import PdsUser, read_frames
from tests.services import free_port, running_pds, running_plc, running_relay


async def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_broken_chain_is_resynchronised_from_the_pds(
    tmp_path: Path, database_url: str | None
) -> None:
    host = ForgedHost()
    async with running_plc(tmp_path / "plc") as plc, aiohttp.ClientSession() as http:
        alice = await ForgedAccount.register(http, plc.url, "alice.test", host.url)
        host.accounts[alice.did] = alice
        first = alice.post("one")
        host.add(alice.event(first))
        alice.post("two: lost upstream, never sent")
        third = alice.post("three")
        host.add(alice.event(third))
        async with (
            host.serving(),
            running_relay(
                tmp_path / "relay", plc.url, crawl=(host.url,), database_url=database_url
            ) as relay,
        ):
            async with asyncio.timeout(20):
                while (account := await relay.relay.account(alice.did)) is None:
                    await asyncio.sleep(0.02)
            assert account is not None
            await wait_for(lambda: account.rev == third.commit.rev)
            assert account.status == "active"
            fourth = alice.post("four")
            host.add(alice.event(fourth))
            frames = await read_frames(http, relay.url, 0, 3, timeout=10)
    assert [(f.t, f.body["rev"]) for f in frames] == [
        ("#commit", first.commit.rev),
        ("#sync", third.commit.rev),
        ("#commit", fourth.commit.rev),
    ]


def duplicates() -> float:
    return sum(
        s.value for m in DUPLICATES.collect() for s in m.samples if s.name.endswith("_total")
    )


async def test_relays_following_each_other_give_one_stream(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
        running_relay(
            tmp_path / "b",
            plc.url,
            port=port_b,
            crawl=(pds.url,),
            upstreams=(url_a,),
            database_url=new_database(),
        ) as relay_b,
    ):
        before = duplicates()
        async with contextlib.AsyncExitStack() as stack:
            relay_a = await stack.enter_async_context(
                running_relay(
                    tmp_path / "a",
                    plc.url,
                    port=port_a,
                    crawl=(pds.url,),
                    upstreams=(url_b,),
                    database_url=new_database(),
                )
            )
            for relay in (relay_a, relay_b):
                streams = relay.relay.streams.values()
                await wait_for(lambda s=streams: all(x.connected for x in s))
            alice = await PdsUser.create(http, pds.url, "alice.test")
            bob = await PdsUser.create(http, pds.url, "bob.test")
            for i in range(5):
                await asyncio.gather(alice.post(f"a{i}"), bob.post(f"b{i}"))
            await wait_for(lambda: duplicates() > before)
        # Relay A is gone; B still follows the PDS itself.
        for i in range(5):
            await asyncio.gather(alice.post(f"a{i} later"), bob.post(f"b{i} later"))
        own = collections.defaultdict(list)
        for frame in await read_frames(http, pds.url, 0, 1000, timeout=2):
            if frame.t == "#commit":
                own[frame.body["repo"]].append(frame.body["rev"])
        relayed = collections.defaultdict(list)
        total = sum(len(v) for v in own.values())
        for frame in await read_frames(http, url_b, 0, 1000, timeout=5):
            if frame.t == "#commit":
                relayed[frame.body["repo"]].append(frame.body["rev"])
            if sum(len(v) for v in relayed.values()) == total:
                break
    assert relayed == own
    assert all(len(revs) == 11 for revs in own.values())
