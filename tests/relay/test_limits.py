"""A host over its event limits is slowed; the others keep flowing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.relay.forge import ForgedAccount, ForgedHost
from tests.relay.xrpc import PdsUser
from tests.services import running_pds, running_plc, running_relay

FLOOD = 150


async def test_a_flooding_host_is_slowed_without_starving_others(
    tmp_path: Path, database_url: str | None
) -> None:
    flood = ForgedHost()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        loud = await ForgedAccount.register(http, plc.url, "loud.test", flood.url)
        for i in range(FLOOD):
            flood.add(loud.event(loud.post(f"flood {i}")))
        async with (
            flood.serving(),
            running_relay(
                tmp_path / "relay", plc.url, crawl=(pds.url, flood.url), database_url=database_url
            ) as relay,
        ):
            streams = {s.host.hostname: s for s in relay.relay.streams.values()}
            flooding = streams[f"localhost:{flood.port}"]
            async with asyncio.timeout(10):
                while not all(s.connected for s in streams.values()):
                    await asyncio.sleep(0.02)
            quiet = await PdsUser.create(http, pds.url, "quiet.test")
            posted = await quiet.post("still heard")
            start = time.monotonic()
            async with asyncio.timeout(5):
                while (account := await relay.relay.account(quiet.did)) is None or (
                    account.rev != posted["commit"]["rev"]
                ):
                    await asyncio.sleep(0.01)
            delay = time.monotonic() - start
            # 50 events a second for a new host: the flood is still being paced.
            assert flooding.host.status == "throttled"
            assert flooding.host.last_seq < FLOOD
            assert delay < 1.0
            async with asyncio.timeout(10):
                while flooding.host.last_seq < FLOOD:
                    await asyncio.sleep(0.05)
            assert (await relay.relay.account(loud.did)).rev == loud.repo.rev  # type: ignore[union-attr]
