"""A host that says whatever a test wants: signed repositories it controls, and a firehose
that serves any frames, well-formed or not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from strata.core.crypto import K256Keypair
from strata.core.frames import message_frame
from strata.core.repo import CommitResult, Repository, Write, export_car
from strata.core.syntax import next_tid
from strata.pds.plc_client import PlcClient
from strata.pds.sequencer import commit_body, iso_now
from strata.relay.ingest import REJECTED
from tests.services import free_port


def rejections() -> dict[str, float]:
    """The relay's dropped events so far, by reason."""
    return {
        s.labels["reason"]: s.value
        for metric in REJECTED.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    }


class ForgedAccount:
    """A did:plc whose repository and signing key the test holds."""

    def __init__(self, did: str, key: K256Keypair) -> None:
        self.did = did
        self.key = key
        self.repo: Repository | None = None
        self.blocks: dict[Any, bytes] = {}

    @classmethod
    async def register(
        cls, http: aiohttp.ClientSession, plc_url: str, handle: str, endpoint: str
    ) -> ForgedAccount:
        key = K256Keypair.generate()
        did = await PlcClient(http, (plc_url,)).create_did(key, key, handle, endpoint)
        return cls(did, key)

    def post(self, text: str, key: K256Keypair | None = None) -> CommitResult:
        """A new commit adding one post, signed with `key` (the account's own by default)."""
        write = Write(
            "create",
            "app.bsky.feed.post",
            next_tid(),
            {"$type": "app.bsky.feed.post", "text": text, "createdAt": iso_now()},
        )
        signer = key or self.key
        if self.repo is None:
            result = Repository.create(self.blocks, self.did, signer, [write])
        else:
            result = self.repo.apply_writes([write], signer)
        self.repo = result.repo
        return result

    def event(self, result: CommitResult, **changes: Any) -> dict[str, Any]:
        """The `#commit` body of `result`, with fields replaced by `changes`."""
        return {**commit_body(self.did, result, [], iso_now()), **changes}


class ForgedHost:
    """A firehose on 127.0.0.1 that serves `frames` (numbered from 1, including ones added
    later) to every subscriber, and the current repository of each account in `accounts`."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.accounts: dict[str, ForgedAccount] = {}
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"

    def add(self, body: dict[str, Any], event_type: str = "#commit") -> None:
        self.frames.append(message_frame(event_type, {**body, "seq": len(self.frames) + 1}))

    def add_raw(self, frame: bytes) -> None:
        self.frames.append(frame)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        async def subscribe(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            sent = int(request.query.get("cursor", "0"))
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                while not ws.closed:
                    for frame in self.frames[sent:]:
                        await ws.send_bytes(frame)
                        sent += 1
                    try:
                        message = await ws.receive(timeout=0.02)
                    except TimeoutError:
                        continue
                    if message.type != aiohttp.WSMsgType.BINARY:
                        break
            return ws

        async def get_repo(request: web.Request) -> web.Response:
            account = self.accounts.get(request.query.get("did", ""))
            if account is None or account.repo is None:
                return web.json_response({"error": "RepoNotFound"}, status=400)
            return web.Response(body=b"".join(export_car(account.repo)))

        async def describe(request: web.Request) -> web.Response:
            return web.json_response({"did": "did:web:localhost", "availableUserDomains": []})

        app = web.Application()
        app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", subscribe)
        app.router.add_get("/xrpc/com.atproto.server.describeServer", describe)
        app.router.add_get("/xrpc/com.atproto.sync.getRepo", get_repo)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield
        finally:
            await runner.cleanup()
