"""A firehose consumer of an ordered list of relays: failover, durable cursors, batches.

Sequence numbers belong to one relay, so a cursor is kept per relay. The consumer reads the first
relay that answers; when it fails it moves to the next one (resuming from that relay's own cursor,
or its live tail the first time), and after a while on a fallback it tries the preferred relay
again. Consumers are expected to be idempotent and to heal gaps themselves (an AppView fetches
an account's repository when a commit does not follow the last one it saw).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import aiohttp
from prometheus_client import Counter, Gauge

from strata.core.errors import CoreError
from strata.core.frames import Frame, decode_frame
from strata.core.syntax.dates import parse_millis
from strata.net.logs import log_event
from strata.resilience import Backoff

log = logging.getLogger("strata.net.subscriber")

MAX_FRAME_BYTES: Final = 5 << 20
BATCH: Final = 500
RETURN_TO_PREFERRED_AFTER: Final = 300.0
"""Seconds on a fallback relay before the preferred one is tried again."""

FAILOVERS = Counter(
    "strata_subscriber_failovers_total", "Relay connections that failed or dropped", ["service"]
)
HANDLER_FAILURES = Counter(
    "strata_subscriber_batch_failures_total", "Batches the consumer failed to store", ["service"]
)
CONNECTED_TO = Gauge(
    "strata_subscriber_relay_index",
    "Position in the relay list of the relay being read (-1 when none)",
    ["service"],
    multiprocess_mode="livemax",
)

LAG = Gauge(
    "strata_firehose_lag_seconds",
    "Age of the newest event stored, when it was stored (how far behind the network it runs)",
    ["service"],
    multiprocess_mode="livemax",
)
DISCONNECTED = Gauge(
    "strata_firehose_disconnected_seconds",
    "Seconds since the consumer last had a relay connection (0 while connected)",
    ["service"],
    multiprocess_mode="livemax",
)

LoadCursor = Callable[[str], Awaitable[int | None]]
HandleBatch = Callable[[str, list[tuple[int, Frame]]], Awaitable[None]]


class StreamEnded(Exception):
    """The relay ended the stream (an error frame or a close)."""


def subscribe_url(relay: str, cursor: int | None) -> str:
    base = relay.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    url = f"{base}/xrpc/com.atproto.sync.subscribeRepos"
    return url if cursor is None else f"{url}?cursor={cursor}"


class RelaySubscriber:
    """Reads one relay at a time from `relays` and hands batches of `(seq, frame)` to
    `handle_batch`, which must store the cursor durably with what it wrote."""

    def __init__(
        self,
        service: str,
        relays: Sequence[str],
        session: aiohttp.ClientSession,
        load_cursor: LoadCursor,
        handle_batch: HandleBatch,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not relays:
            raise ValueError("at least one relay is needed")
        self.service = service
        self.relays = list(relays)
        self.session = session
        self.load_cursor = load_cursor
        self.handle_batch = handle_batch
        self.clock = clock
        self.current = 0
        self.connected = False
        self.disconnected_at = clock()
        self.failures = 0
        self.fresh: bool | None = None
        self.live_tail: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    def staleness(self) -> float:
        """Seconds without any relay connection: how much of the network the consumer may have
        missed (0 while connected)."""
        seconds = 0.0 if self.connected else self.clock() - self.disconnected_at
        DISCONNECTED.labels(self.service).set(seconds)
        return seconds

    def describe(self) -> list[dict[str, Any]]:
        """The relays as `/xrpc/_upstreams` lists them: which one is being read."""
        return [
            {
                "kind": "relay",
                "url": relay,
                "state": "connected" if reading else "standby",
                "inUse": reading,
            }
            for i, relay in enumerate(self.relays)
            for reading in [self.connected and i == self.current]
        ]

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"{self.service} subscriber")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def run(self) -> None:
        backoff = Backoff(base=0.5, cap=30.0)
        while True:
            relay = self.relays[self.current]
            try:
                await self._read(relay, backoff)
            except (aiohttp.ClientError, OSError, TimeoutError, StreamEnded) as exc:
                FAILOVERS.labels(self.service).inc()
                log_event(
                    log, "relay connection failed", logging.WARNING, service=self.service,
                    relay=relay, error=str(exc) or type(exc).__name__,
                )  # fmt: skip
            except Exception as exc:
                # The consumer's own failure (its database, say): the cursor did not move, so
                # the same relay is read again from it after a pause.
                HANDLER_FAILURES.labels(self.service).inc()
                log_event(
                    log, "batch not stored; retrying", logging.ERROR, service=self.service,
                    error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
                await asyncio.sleep(backoff.next_delay())
                continue
            finally:
                if self.connected:
                    self.connected = False
                    self.disconnected_at = self.clock()
                CONNECTED_TO.labels(self.service).set(-1)
            self.failures += 1
            self.current = (self.current + 1) % len(self.relays)
            # A full round of failures waits; moving to the next relay does not.
            if self.failures >= len(self.relays):
                self.failures = 0
                await asyncio.sleep(backoff.next_delay())

    async def _read(self, relay: str, backoff: Backoff) -> None:
        if self.fresh is None:
            # A new consumer replays everything its first relay still holds; one that has read
            # before starts a relay it has no cursor for at the live tail.
            cursors = [await self.load_cursor(r) for r in self.relays]
            self.fresh = all(cursor is None for cursor in cursors)
        cursor = None if relay in self.live_tail else await self.load_cursor(relay)
        if cursor is None and self.fresh:
            cursor = 0
        queue: asyncio.Queue[tuple[int, Frame] | BaseException] = asyncio.Queue(maxsize=BATCH * 4)
        started = self.clock()
        async with self.session.ws_connect(
            subscribe_url(relay, cursor),
            max_msg_size=MAX_FRAME_BYTES,
            heartbeat=30.0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=90.0, ws_close=5.0),
        ) as ws:
            self.connected = True
            CONNECTED_TO.labels(self.service).set(self.current)
            log_event(log, "relay connected", service=self.service, relay=relay, cursor=cursor)
            reader = asyncio.create_task(self._receive(relay, ws, queue))
            try:
                while True:
                    item = await queue.get()
                    batch: list[tuple[int, Frame]] = []
                    while True:
                        if isinstance(item, BaseException):
                            if batch:
                                await self.handle_batch(relay, batch)
                            raise item
                        batch.append(item)
                        if len(batch) >= BATCH or queue.empty():
                            break
                        item = queue.get_nowait()
                    await self.handle_batch(relay, batch)
                    self._measure_lag(batch[-1][1])
                    self.live_tail.discard(relay)
                    self.fresh = False
                    self.failures = 0
                    backoff.reset()
                    if self.current != 0 and self.clock() - started > RETURN_TO_PREFERRED_AFTER:
                        self.current = -1  # the next round starts from the preferred relay
                        return
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    def _measure_lag(self, frame: Frame) -> None:
        stamp = frame.body.get("time")
        if isinstance(stamp, str):
            with contextlib.suppress(CoreError, ValueError):
                LAG.labels(self.service).set(max(0.0, time.time() - parse_millis(stamp) / 1000))

    async def _receive(
        self,
        relay: str,
        ws: aiohttp.ClientWebSocketResponse,
        queue: asyncio.Queue[tuple[int, Frame] | BaseException],
    ) -> None:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.ERROR:
                await queue.put(aiohttp.ClientError(f"websocket error: {message.data}"))
                return
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            try:
                frame = decode_frame(message.data)
            except CoreError as exc:
                log_event(log, "undecodable frame", logging.WARNING, relay=relay, error=str(exc))
                continue
            if frame.op == -1:
                if frame.body.get("error") == "FutureCursor":
                    self.live_tail.add(relay)
                    self.fresh = False
                await queue.put(StreamEnded(f"error frame {frame.body.get('error')}"))
                return
            seq = frame.body.get("seq")
            if isinstance(seq, int):
                await queue.put((seq, frame))
        await queue.put(StreamEnded("the relay closed the stream"))
