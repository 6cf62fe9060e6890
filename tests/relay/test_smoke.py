from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.relay.xrpc import PdsUser, read_frames
from tests.services import running_pds, running_plc, running_relay


async def test_smoke(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(tmp_path / "relay", plc.url, crawl=(pds.url,)) as relay,
        aiohttp.ClientSession() as http,
    ):
        alice = await PdsUser.create(http, pds.url, "alice.test")
        for i in range(5):
            await alice.post(f"post {i}")
        frames = await read_frames(http, relay.url, 0, 8, timeout=5)
        print([(f.t, f.body.get("seq"), f.body.get("repo") or f.body.get("did")) for f in frames])
        assert len(frames) >= 6
