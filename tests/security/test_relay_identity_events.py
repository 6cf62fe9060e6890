"""A PDS may announce identity changes only for the accounts it serves: an `#identity` event
from a host that the DID document does not name is dropped and counted, as commits are."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from strata.pds.sequencer import iso_now
from tests.relay.forge import ForgedAccount, ForgedHost, rejections
from tests.relay.xrpc import PdsUser, read_frames
from tests.services import running_pds, running_plc, running_relay


async def test_identity_events_for_accounts_of_another_host_are_dropped(tmp_path: Path) -> None:
    evil = ForgedHost()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        bob = await PdsUser.create(http, pds.url, "bob.test")
        mallory = await ForgedAccount.register(http, plc.url, "mallory.test", evil.url)
        # Bob lives on the real PDS: the forged host speaks for him, with and without a handle.
        evil.add({"did": bob.did, "handle": "bob.test", "time": iso_now()}, "#identity")
        evil.add({"did": bob.did, "time": iso_now()}, "#identity")
        # Its own account it may announce.
        evil.add({"did": mallory.did, "handle": "mallory.test", "time": iso_now()}, "#identity")
        before = rejections().get("wrong-host", 0)
        async with (
            evil.serving(),
            running_relay(tmp_path / "relay", plc.url, crawl=(evil.url,)) as relay,
        ):
            host = next(iter(relay.relay.streams.values())).host
            async with asyncio.timeout(20):
                while host.last_seq < len(evil.frames):
                    await asyncio.sleep(0.02)
            await relay.relay.flush()
            frames = await read_frames(http, relay.url, 0, 3, timeout=3)
            assert await relay.relay.account(bob.did) is None
    assert [(f.t, f.body["did"], f.body.get("handle")) for f in frames] == [
        ("#identity", mallory.did, "mallory.test")
    ]
    assert rejections()["wrong-host"] - before == 2
