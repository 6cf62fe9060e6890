"""Serving an event stream (`subscribeRepos`) to many consumers from one copy of each frame.

A service keeps its events in an `EventLog`: numbered, stored frames for cursor replay, and a
`Broadcaster` for live ones. The broadcaster holds one shared window of recent frames, already
framed for the WebSocket; each consumer only keeps a position in it and writes whatever is new in
one call, so a frame costs the same whether ten or a thousand consumers read it. The window is
capped in bytes, not frames (a few large frames weigh as much as many small ones), and its
oldest frames leave first. A consumer whose position falls out of the window is told
`ConsumerTooSlow` and closed: memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Final, Protocol

from aiohttp import WSMsgType, web
from prometheus_client import Counter, Gauge

from strata.core.frames import error_frame, info_frame, websocket_message
from strata.net.logs import log_event

log = logging.getLogger("strata.firehose")

WINDOW_BYTES: Final = 256 << 20
"""Bytes of live frames kept for consumers that are behind; one further behind is too slow."""
FRAME_OVERHEAD: Final = 96
"""Bytes a kept frame costs beyond its own: the bytes object, its number and two list slots."""
REPLAY_PAGE: Final = 500
WRITE_BUFFER_HIGH: Final = 4 << 20
"""Bytes queued on one connection above which no more is written until it drains."""

CONSUMERS = Gauge(
    "strata_firehose_consumers", "Open event-stream connections", ["service"],
    multiprocess_mode="livesum",
)  # fmt: skip
SLOW_CONSUMERS = Counter(
    "strata_firehose_slow_consumers_total", "Consumers closed with ConsumerTooSlow", ["service"]
)
FRAMES_SENT = Counter(
    "strata_firehose_frames_sent_total", "Frames written to consumers", ["service"]
)


class ConsumerTooSlow(Exception):
    """The consumer's position fell out of the broadcaster's window."""


class Broadcaster:
    """The window of recent live frames that every consumer reads from."""

    def __init__(self, window_bytes: int = WINDOW_BYTES) -> None:
        self.window_bytes = window_bytes
        self._seqs: list[int] = []
        self._messages: list[bytes] = []
        self._base = 0
        self._bytes = 0
        self._changed: asyncio.Future[None] | None = None

    @property
    def end(self) -> int:
        """The position just after the newest frame: where a new consumer starts."""
        return self._base + len(self._seqs)

    @property
    def held_bytes(self) -> int:
        """What the window holds now, frames and their overhead."""
        return self._bytes

    def publish(self, frames: Iterable[tuple[int, bytes]]) -> None:
        """Add stored frames (sequence number, frame bytes), oldest first, and wake consumers."""
        for seq, frame in frames:
            message = websocket_message(frame)
            self._seqs.append(seq)
            self._messages.append(message)
            self._bytes += len(message) + FRAME_OVERHEAD
        if self._bytes > self.window_bytes:
            self._trim()
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def _trim(self) -> None:
        # Down to three quarters of the cap, so that the lists are cut once in a while rather
        # than at every publish; the newest frame always stays.
        target = self.window_bytes * 3 // 4
        drop = 0
        while drop < len(self._messages) - 1 and self._bytes > target:
            self._bytes -= len(self._messages[drop]) + FRAME_OVERHEAD
            drop += 1
        del self._seqs[:drop], self._messages[:drop]
        self._base += drop

    async def wait(self, position: int) -> None:
        """Return once there is a frame at `position` or beyond."""
        if position < self.end:
            return
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)

    def read(self, position: int, after_seq: int) -> tuple[list[bytes], int, int]:
        """WebSocket messages from `position` with a sequence number above `after_seq`; returns
        them with the new position and the last sequence number. Raises `ConsumerTooSlow`."""
        if position < self._base:
            raise ConsumerTooSlow
        start = position - self._base
        seqs = self._seqs[start:]
        messages = self._messages[start:]
        skip = 0
        while skip < len(seqs) and seqs[skip] <= after_seq:
            skip += 1
        last = seqs[-1] if seqs else after_seq
        return messages[skip:], self.end, max(last, after_seq)


class EventLog(Protocol):
    """What `serve_event_stream` needs from a service's stored events."""

    broadcaster: Broadcaster

    @property
    def last_seq(self) -> int:
        """The newest sequence number published."""

    def oldest_seq(self) -> int | None:
        """The oldest sequence number still stored, if any."""

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Stored frames with a sequence number above `after`, oldest first."""


async def _written(request: web.Request, messages: list[bytes]) -> bool:
    """Write WebSocket messages in one call; wait while the connection's buffer is full.
    False once the connection is closing."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    transport.writelines(messages)
    while transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
        if transport.is_closing():
            return False
        await asyncio.sleep(0.01)
    return True


async def serve_event_stream(
    service: str, events: EventLog, request: web.Request, cursor: int | None
) -> web.WebSocketResponse:
    """Serve a subscription: replay from `cursor`, then live frames, until either side stops.

    Replay reads stored frames page by page; the switch to live frames takes the broadcaster's
    position with no await after the last (empty) page, so nothing falls in between, and frames
    already replayed are skipped by sequence number.
    """
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 16, compress=False)
    await ws.prepare(request)
    sent = events.last_seq if cursor is None else cursor
    CONSUMERS.labels(service).inc()
    frames_sent = FRAMES_SENT.labels(service)
    reader = asyncio.ensure_future(_drain_client(ws))
    try:
        if cursor is not None:
            if cursor > events.last_seq:
                await ws.send_bytes(error_frame("FutureCursor", "Cursor in the future."))
                return ws
            oldest = events.oldest_seq()
            if oldest is not None and cursor + 1 < oldest:
                await ws.send_bytes(
                    info_frame(
                        "OutdatedCursor", "Requested cursor exceeded limit. Possibly missing events"
                    )
                )
        while True:
            page = events.replay(sent, REPLAY_PAGE)
            if not page:
                position = events.broadcaster.end
                break
            if not await _written(request, [websocket_message(frame) for _, frame in page]):
                return ws
            frames_sent.inc(len(page))
            sent = page[-1][0]
        while not reader.done():
            waiter = asyncio.ensure_future(events.broadcaster.wait(position))
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
                break
            messages, position, sent = events.broadcaster.read(position, sent)
            if messages:
                if not await _written(request, messages):
                    break
                frames_sent.inc(len(messages))
    except ConsumerTooSlow:
        SLOW_CONSUMERS.labels(service).inc()
        log_event(log, "consumer too slow", service=service, remote=request.remote, seq=sent)
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(error_frame("ConsumerTooSlow", "Stream consumer too slow"))
    except ConnectionError:
        pass
    finally:
        reader.cancel()
        CONSUMERS.labels(service).dec()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
