"""Serving an event stream (`subscribeRepos`) to many consumers from one copy of each frame.

A service keeps its events in an `EventLog`: numbered, stored frames for cursor replay, and a
`Broadcaster` for live ones. The broadcaster holds one shared window of recent frames, already
framed for the WebSocket, so a frame is framed once however many consumers read it.

A consumer that has caught up is attached to the broadcaster, which writes each published batch
to its connection at once, joined into one buffer: no task of the consumer's wakes per batch,
which at thousands of events a second to a hundred consumers was most of the work. A consumer
whose connection is slow to drain is detached and catches up from its position in the window at
its own pace. The window is capped in bytes, not frames (a few large frames weigh as much as
many small ones), and its oldest frames leave first. A consumer whose position falls out of the
window is told `ConsumerTooSlow` and closed: memory stays bounded.
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


class Subscriber:
    """A consumer attached to the broadcaster: its connection, the last sequence number it was
    sent, its place in the window, and a future set when the broadcaster lets it go (its
    connection filled up or closed)."""

    __slots__ = ("frames_sent", "position", "released", "sent", "transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        sent: int,
        position: int,
        frames_sent: Counter,
        released: asyncio.Future[None],
    ) -> None:
        self.transport = transport
        self.sent = sent
        self.position = position
        self.frames_sent = frames_sent
        self.released = released


class Broadcaster:
    """The window of recent live frames that every consumer reads from."""

    def __init__(self, window_bytes: int = WINDOW_BYTES) -> None:
        self.window_bytes = window_bytes
        self._seqs: list[int] = []
        self._messages: list[bytes] = []
        self._base = 0
        self._bytes = 0
        self._attached: dict[Subscriber, None] = {}

    @property
    def end(self) -> int:
        """The position just after the newest frame: where a new consumer starts."""
        return self._base + len(self._seqs)

    @property
    def held_bytes(self) -> int:
        """What the window holds now, frames and their overhead."""
        return self._bytes

    def publish(self, frames: Iterable[tuple[int, bytes]]) -> None:
        """Add stored frames (sequence number, frame bytes), oldest first, and write them to
        every attached consumer."""
        first = len(self._seqs)
        for seq, frame in frames:
            message = websocket_message(frame)
            self._seqs.append(seq)
            self._messages.append(message)
            self._bytes += len(message) + FRAME_OVERHEAD
        if self._attached and len(self._seqs) > first:
            self._push(first)
        if self._bytes > self.window_bytes:
            self._trim()

    def _push(self, first: int) -> None:
        seqs, messages = self._seqs[first:], self._messages[first:]
        joined = b"".join(messages)
        end, last = self.end, seqs[-1]
        for subscriber in list(self._attached):
            transport = subscriber.transport
            if transport.is_closing():
                self.release(subscriber)
                continue
            if subscriber.sent < seqs[0]:
                transport.write(joined)
                subscriber.frames_sent.inc(len(messages))
            else:
                # Attached just after a replay that already sent the start of this batch.
                fresh = [m for seq, m in zip(seqs, messages, strict=True) if seq > subscriber.sent]
                transport.write(b"".join(fresh))
                subscriber.frames_sent.inc(len(fresh))
            subscriber.sent = max(subscriber.sent, last)
            subscriber.position = end
            if transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
                self.release(subscriber)

    def attach(self, transport: asyncio.Transport, sent: int, frames_sent: Counter) -> Subscriber:
        """Write every frame published from now on, above `sent`, to `transport` as it is
        published, until released. Call it with no await since the consumer's last `read`,
        which left it at the end of the window."""
        released = asyncio.get_running_loop().create_future()
        subscriber = Subscriber(transport, sent, self.end, frames_sent, released)
        self._attached[subscriber] = None
        return subscriber

    def release(self, subscriber: Subscriber) -> None:
        """Stop writing to `subscriber`; its `released` future is then done."""
        self._attached.pop(subscriber, None)
        if not subscriber.released.done():
            subscriber.released.set_result(None)

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

    async def oldest_seq(self) -> int | None:
        """The oldest sequence number still stored, if any."""

    async def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Stored frames with a sequence number above `after`, oldest first."""


async def _drained(transport: asyncio.Transport) -> bool:
    """Wait while the connection's buffer is full; False once the connection is closing."""
    while transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
        if transport.is_closing():
            return False
        await asyncio.sleep(0.01)
    return not transport.is_closing()


async def _written(transport: asyncio.Transport, messages: list[bytes]) -> bool:
    """Write WebSocket messages in one call, then wait while the connection's buffer is full.
    False once the connection is closing."""
    if transport.is_closing():
        return False
    transport.write(b"".join(messages))
    return await _drained(transport)


async def serve_event_stream(
    service: str, events: EventLog, request: web.Request, cursor: int | None
) -> web.WebSocketResponse:
    """Serve a subscription: replay from `cursor`, then live frames, until either side stops.

    Replay reads stored frames page by page. The broadcaster's position is taken before each
    page is asked for, so when the last (empty) page comes back, whatever was published while
    it was read is still ahead of that position, and frames both replayed and published are
    skipped by sequence number. Live, the consumer is attached to the broadcaster while it
    keeps up, and reads from its window while it catches up.
    """
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 16, compress=False)
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    sent = events.last_seq if cursor is None else cursor
    CONSUMERS.labels(service).inc()
    frames_sent = FRAMES_SENT.labels(service)
    reader = asyncio.ensure_future(_drain_client(ws))
    subscriber: Subscriber | None = None
    try:
        if cursor is not None:
            if cursor > events.last_seq:
                await ws.send_bytes(error_frame("FutureCursor", "Cursor in the future."))
                return ws
            oldest = await events.oldest_seq()
            if oldest is not None and cursor + 1 < oldest:
                await ws.send_bytes(
                    info_frame(
                        "OutdatedCursor", "Requested cursor exceeded limit. Possibly missing events"
                    )
                )
        while True:
            # Published frames were stored first: any the page misses are from here on.
            position = events.broadcaster.end
            page = await events.replay(sent, REPLAY_PAGE)
            if not page:
                break
            if not await _written(transport, [websocket_message(frame) for _, frame in page]):
                return ws
            frames_sent.inc(len(page))
            sent = page[-1][0]
        broadcaster = events.broadcaster
        while not reader.done():
            messages, position, sent = broadcaster.read(position, sent)
            if messages:
                if not await _written(transport, messages):
                    break
                frames_sent.inc(len(messages))
                continue
            subscriber = broadcaster.attach(transport, sent, frames_sent)
            await asyncio.wait({subscriber.released, reader}, return_when=asyncio.FIRST_COMPLETED)
            broadcaster.release(subscriber)
            position, sent = subscriber.position, subscriber.sent
            if not await _drained(transport):
                break
    except ConsumerTooSlow:
        SLOW_CONSUMERS.labels(service).inc()
        log_event(log, "consumer too slow", service=service, remote=request.remote, seq=sent)
        with contextlib.suppress(ConnectionError):
            await ws.send_bytes(error_frame("ConsumerTooSlow", "Stream consumer too slow"))
    except ConnectionError:
        pass
    finally:
        if subscriber is not None:
            events.broadcaster.release(subscriber)
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
