"""The live firehose window of a PDS and of a relay is capped in bytes: large frames push the
oldest out instead of growing memory with the frame count, a consumer left behind is closed
with ConsumerTooSlow, and cursors still replay from what is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from strata.net.firehose import ConsumerTooSlow
from tests.relay.xrpc import PdsUser, followed, read_frames
from tests.services import running_pds, running_plc, running_relay

WINDOW = 2 << 20
RECORDS = 8
RECORD_BYTES = 400_000


@pytest.mark.async_timeout(90)
async def test_large_frames_stay_within_the_window_bytes(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url, firehose_window_bytes=WINDOW) as pds,
        running_relay(
            tmp_path / "relay", plc.url, crawl=(pds.url,), firehose_window_bytes=WINDOW
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        await followed(relay.relay)
        alice = await PdsUser.create(http, pds.url, "alice.test")
        live = [pds.pds.sequencer.broadcaster, relay.relay.events.broadcaster]
        for i in range(RECORDS):
            record = {"$type": "com.example.blob", "data": f"{i}" * RECORD_BYTES}
            await alice.call(
                "com.atproto.repo.createRecord",
                {"repo": alice.did, "collection": "com.example.blob", "record": record},
            )
            assert all(b.held_bytes <= WINDOW for b in live)
        last = pds.pds.sequencer.last_seq
        async with asyncio.timeout(20):
            while relay.relay.events.last_seq < last:
                await asyncio.sleep(0.05)
        for broadcaster in live:
            # 3.2 MB of frames were published: the oldest left the 2 MiB window.
            assert broadcaster.held_bytes <= WINDOW
            with pytest.raises(ConsumerTooSlow):
                broadcaster.read(0, after_seq=0)
        # A cursor replays everything from storage, whatever the live window holds.
        for url in (pds.url, relay.url):
            frames = await read_frames(http, url, 0, last, timeout=20)
            assert [f.body["seq"] for f in frames] == list(range(1, last + 1))
