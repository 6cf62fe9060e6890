"""A malicious host's frames are dropped and counted; the relay and its other hosts go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from strata.core.crypto import K256Keypair
from strata.core.repo import Repository, Write
from strata.core.syntax import tid_from_parts, tid_timestamp_micros
from tests.relay.forge import ForgedAccount, ForgedHost, rejections
from tests.relay.xrpc import PdsUser, read_frames
from tests.services import running_pds, running_plc, running_relay


async def test_forged_frames_are_rejected_and_counted(
    tmp_path: Path, database_url: str | None
) -> None:
    evil = ForgedHost()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        bob = await PdsUser.create(http, pds.url, "bob.test")
        alice = await ForgedAccount.register(http, plc.url, "alice.test", evil.url)

        first = alice.post("one")
        evil.add(alice.event(first))
        good = first.repo

        evil.add(alice.event(alice.post("x", key=K256Keypair.generate())))
        alice.repo = good

        older = tid_from_parts(tid_timestamp_micros(first.commit.rev) - 1_000_000, 0)
        fork = Repository.create(
            {}, alice.did, alice.key, [Write("create", "a.b.c", "k", {})], older
        )
        evil.add(alice.event(fork))

        broken = alice.post("proof that does not invert")
        evil.add(alice.event(broken, prevData=broken.cid))
        alice.repo = good

        evil.add(alice.event(alice.post("for bob"), repo=bob.did))
        alice.repo = good

        evil.add_raw(b"\xa2\x61t\x67#commit\x62op\x01\xff\xfe not cbor")

        too_big = alice.post("huge")
        evil.add(alice.event(too_big, blocks=b"\x00" * 2_100_000))
        alice.repo = good

        second = alice.post("two")
        evil.add(alice.event(second))

        before = rejections()
        async with (
            evil.serving(),
            running_relay(
                tmp_path / "relay", plc.url, crawl=(pds.url, evil.url), database_url=database_url
            ) as relay,
        ):
            streams = relay.relay.streams.values()
            async with asyncio.timeout(20):
                while not all(s.connected for s in streams):
                    await asyncio.sleep(0.02)
            await bob.post("bob keeps posting")
            evil_host = next(s.host for s in streams if s.host.hostname.endswith(str(evil.port)))
            async with asyncio.timeout(20):
                while evil_host.last_seq < len(evil.frames):
                    await asyncio.sleep(0.02)
            await bob.post("and again")
            # alice's two commits, bob's two, and bob's #identity and #account are not
            # relayed (they came before the relay followed his PDS).
            frames = await read_frames(http, relay.url, 0, 4, timeout=10)

        after = rejections()
        counted = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        assert counted == {
            "bad-signature": 1,
            "rev-not-increasing": 1,
            "mst-inversion": 1,
            "wrong-host": 1,
            "malformed-frame": 1,
            "oversized": 1,
        }
        commits = [f.body for f in frames if f.t == "#commit"]
        assert [c["rev"] for c in commits if c["repo"] == alice.did] == [
            first.commit.rev,
            second.commit.rev,
        ]
        assert len([c for c in commits if c["repo"] == bob.did]) == 2
