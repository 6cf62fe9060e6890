"""A loopback HTTP proxy in front of a PDS that injects faults: the migration tool talks to the
PDS through it, and a test decides which requests fail and how."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.services import serving

FORWARDED = ("authorization", "content-type")

# A fault looks at a request first: it answers it (a failure), or returns None to let it pass.
Fault = Callable[[web.Request, "FaultProxy"], Awaitable[web.StreamResponse | None]]


class FaultProxy:
    def __init__(self, target: str, http: aiohttp.ClientSession) -> None:
        self.target = target
        self.http = http
        self.faults: list[Fault] = []
        self.seen: list[str] = []  # the XRPC methods asked for, in order

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.path.rsplit("/", 1)[-1])
        for fault in self.faults:
            answer = await fault(request, self)
            if answer is not None:
                return answer
        return await self.forward(request, await request.read())

    async def forward(self, request: web.Request, body: Any) -> web.Response:
        """Send the request on to the PDS; `body` is bytes or an async iterator of them."""
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        async with self.http.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as response:
            payload = await response.read()
            kept = {k: v for k, v in response.headers.items() if k.lower() == "content-type"}
            return web.Response(status=response.status, body=payload, headers=kept)


def disconnect(request: web.Request) -> web.Response:
    """Drop the client's connection without an answer, as an unreachable host would."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=502)


@contextlib.asynccontextmanager
async def fault_proxy(
    target: str, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[str, FaultProxy]]:
    """Serve a `FaultProxy` to `target` on 127.0.0.1; yields its URL and the proxy."""
    proxy = FaultProxy(target, http)
    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    async with serving(app) as url:
        yield url, proxy
