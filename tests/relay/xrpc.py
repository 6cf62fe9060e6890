"""Small async helpers for relay tests: accounts and posts on a PDS, frames from a firehose."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from strata.core.frames import Frame, decode_frame
from strata.relay.service import Relay


class PdsUser:
    """An account on a PDS, logged in."""

    def __init__(self, http: aiohttp.ClientSession, pds: str, did: str, token: str) -> None:
        self.http, self.pds, self.did, self.token = http, pds, did, token

    @classmethod
    async def create(cls, http: aiohttp.ClientSession, pds: str, handle: str) -> PdsUser:
        body = {"handle": handle, "email": f"{handle}@example.test", "password": "hunter2-pw"}
        async with http.post(f"{pds}/xrpc/com.atproto.server.createAccount", json=body) as r:
            answer = await r.json()
            assert r.status == 200, answer
        return cls(http, pds, answer["did"], answer["accessJwt"])

    async def call(self, nsid: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(
            f"{self.pds}/xrpc/{nsid}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            answer: dict[str, Any] = await r.json()
            assert r.status == 200, answer
            return answer

    async def post(self, text: str) -> dict[str, Any]:
        record = {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-21T00:00:00Z"}
        return await self.call(
            "com.atproto.repo.createRecord",
            {"repo": self.did, "collection": "app.bsky.feed.post", "record": record},
        )


async def followed(relay: Relay, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until `count` of the relay's hosts have their firehoses connected."""
    async with asyncio.timeout(timeout):
        while sum(s.connected for s in relay.streams.values()) < count:
            await asyncio.sleep(0.02)


async def read_frames(
    http: aiohttp.ClientSession,
    url: str,
    cursor: int | None,
    until: int,
    timeout: float = 20.0,
) -> list[Frame]:
    """Frames from a `subscribeRepos` at `url` until `until` of them arrived (or the stream
    ends, or `timeout` passes)."""
    query = "" if cursor is None else f"?cursor={cursor}"
    ws_url = url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos" + query
    frames: list[Frame] = []
    async with http.ws_connect(ws_url, max_msg_size=8 << 20) as ws:
        try:
            async with asyncio.timeout(timeout):
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.BINARY:
                        break
                    frames.append(decode_frame(message.data))
                    if len(frames) >= until:
                        break
        except TimeoutError:
            pass
    return frames
