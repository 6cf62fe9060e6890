"""Request bodies: they must arrive before a request is admitted, and keep arriving at a minimum
rate, and a client that goes away is noted in one line.

A client that sends its headers and then trickles the body (slowloris) must not hold one of the
server's admission slots while it does so. A request therefore waits for its body (the whole of
it, or its first `PREBUFFER` bytes when it is larger) before admission counts it. From the end of
the headers a body has `GRACE` seconds, then must keep arriving at `MIN_RATE` bytes a second: one
that falls behind is answered 408 while it waits for admission, and its connection is dropped
once it has been admitted (a large upload its handler is reading).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aiohttp import web

from strata.net.logs import log_event

log = logging.getLogger("strata.net")

PREBUFFER: Final = 1 << 20
"""Bytes of a body read ahead before admission: every JSON body fits (the largest, a record
write, is capped at 1,000,000 bytes); a larger upload is admitted once this much has come."""
GRACE: Final = 10.0
"""Seconds a body has before it must arrive at `MIN_RATE`."""
MIN_RATE: Final = 16 * 1024
"""Bytes a second a body must average after `GRACE` (128 kbit/s)."""
PROBE: Final = 0.25
"""Seconds between looks at a body of unknown or large size, to admit it once `PREBUFFER` came."""

BODY_LATE: Final = web.RequestKey("strata_body_late", bool)
"""Set on a request whose connection was dropped because its body came too slowly."""


def _due(request: web.Request, started: float) -> float:
    """The loop time by which the body received so far must have grown (or ended)."""
    return started + GRACE + request.content.total_bytes / MIN_RATE


async def body_arrived(request: web.Request) -> bool:
    """Wait for the request's body, or the first `PREBUFFER` bytes of a larger one, without
    consuming it (the handler reads it as usual); False when it comes too slowly. Raises
    `ConnectionResetError` when the client goes away meanwhile."""
    content = request.content
    if not request.body_exists or content.is_eof():
        return True
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Room to buffer the whole of a small body before anything reads it.
    content.set_read_chunk_size(PREBUFFER)
    length = request.content_length
    whole = length is not None and length <= PREBUFFER
    while not content.is_eof() and content.total_bytes < PREBUFFER:
        wait = _due(request, started) - loop.time()
        if wait <= 0:
            return False
        try:
            async with asyncio.timeout(wait if whole else min(wait, PROBE)):
                await content.wait_eof()
        except TimeoutError:
            continue
    _watch(request, started)
    return True


def _watch(request: web.Request, started: float) -> None:
    """Drop the connection if the rest of the body (a large upload) falls below the rate."""
    loop = asyncio.get_running_loop()

    def check() -> None:
        content = request.content
        transport = request.transport
        if content.is_eof() or transport is None or transport.is_closing():
            return
        due = _due(request, started)
        if loop.time() < due:
            loop.call_at(due, check)
            return
        request[BODY_LATE] = True
        log_event(
            log, "request body too slow; connection dropped", logging.WARNING,
            path=request.path, remote=request.remote, received=content.total_bytes,
        )  # fmt: skip
        transport.close()

    if not request.content.is_eof():
        loop.call_at(_due(request, started), check)


def client_gone(request: web.Request) -> bool:
    """Whether the request's client has closed its connection (or it was dropped)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def note_client_gone(request: web.Request) -> web.Response:
    """Log, in one line, a client that went away mid-request; the response nobody will read."""
    if not request.get(BODY_LATE):
        log_event(log, "client went away", path=request.path, remote=request.remote)
    return web.Response(status=400)


def body_too_slow(request: web.Request) -> web.Response:
    """The 408 for a body that did not arrive in time; the connection is closed after it."""
    log_event(
        log, "request body too slow", logging.WARNING, path=request.path, remote=request.remote
    )
    response = web.json_response(
        {"error": "RequestTimeout", "message": "The request body did not arrive in time"},
        status=408,
    )
    response.force_close()
    return response
