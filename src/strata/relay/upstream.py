"""One upstream's firehose connection: subscribe at the durable cursor, read, pace, reconnect.

A host over its event limits is slowed (the read loop waits, so TCP pushes back on the host)
rather than dropped, and waits only its own reader: other hosts go on. Connection failures
retry with jittered exponential backoff, forever, without operator action; a host that keeps
failing is shown as `offline` until it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
from prometheus_client import Counter, Gauge

from strata.identity.errors import ResolutionFailed
from strata.net.logs import log_event
from strata.relay.ingest import Ingest, UpstreamError
from strata.relay.store import Host
from strata.resilience import Backoff, Limits, SlidingWindow

log = logging.getLogger("strata.relay.upstream")

MAX_FRAME_BYTES: Final = 5 << 20
"""Larger than any valid frame (2 MB of blocks plus the rest); bigger ones end the connection."""
OFFLINE_AFTER: Final = 8
"""Failed connection attempts in a row after which a host is shown as offline."""

CONNECTED = Gauge("strata_relay_upstreams_connected", "Upstream firehoses currently connected")
CONNECT_FAILURES = Counter(
    "strata_relay_upstream_failures_total", "Upstream connections that failed or dropped"
)
THROTTLED = Counter(
    "strata_relay_throttle_waits_total", "Times a host's reader waited for its rate limits"
)
OVERSIZED = Counter("strata_relay_oversized_frames_total", "Upstream frames over the size limit")


def limits_for(host: Host) -> Limits:
    """A host's event limits: relays the operator follows carry many hosts' events, so they
    get the trusted tier."""
    return host_limits(host.account_limit, host.trusted or host.kind == "relay")


def host_limits(account_limit: int, trusted: bool) -> Limits:
    """The reference relay's event limits: per second, hour and day, growing with the host's
    account limit; trusted hosts get the high fixed tier."""
    if trusted:
        per_second, per_hour, per_day = 5_000, 50_000_000, 500_000_000
    else:
        per_second = 50 + account_limit // 1000
        per_hour = 2_500 + account_limit
        per_day = 20_000 + account_limit * 10
    return Limits(
        [
            SlidingWindow(1.0, per_second),
            SlidingWindow(3600.0, per_hour),
            SlidingWindow(86_400.0, per_day),
        ]
    )


def websocket_url(host: Host) -> str:
    scheme = "ws" if host.no_ssl else "wss"
    url = f"{scheme}://{host.hostname}/xrpc/com.atproto.sync.subscribeRepos"
    return url if host.last_seq < 0 else f"{url}?cursor={host.last_seq}"


class UpstreamStream:
    """The reader task of one host."""

    def __init__(
        self,
        host: Host,
        ingest: Ingest,
        session: aiohttp.ClientSession,
        on_status: Callable[[Host], None],
        on_event: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.ingest = ingest
        self.session = session
        self.on_status = on_status
        self.on_event = on_event
        self.clock = clock
        self.limits = limits_for(host)
        self.backoff = Backoff(base=1.0, cap=60.0)
        self.connected = False
        self.failures = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"upstream {self.host.hostname}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def set_limits(self) -> None:
        """Apply changed account limits or trust."""
        self.limits = limits_for(self.host)

    def _set_status(self, status: str) -> None:
        if self.host.status != status and self.host.status != "banned":
            self.host.status = status
            self.on_status(self.host)

    async def run(self) -> None:
        while True:
            try:
                await self._read()
            except (aiohttp.ClientError, OSError, TimeoutError, UpstreamError) as exc:
                self.failures += 1
                CONNECT_FAILURES.inc()
                log_event(
                    log, "upstream connection failed", logging.WARNING, host=self.host.hostname,
                    attempt=self.failures, error=str(exc) or type(exc).__name__,
                )  # fmt: skip
                if isinstance(exc, UpstreamError) and exc.error == "FutureCursor":
                    # The host has fewer events than it once sent: follow its live tail.
                    self.host.last_seq = -1
            except ResolutionFailed as exc:
                self.failures += 1
                log_event(
                    log, "identity unavailable; will retry the same event", logging.WARNING,
                    host=self.host.hostname, error=str(exc),
                )  # fmt: skip
            finally:
                if self.connected:
                    CONNECTED.dec()
                    self.connected = False
            if self.failures >= OFFLINE_AFTER:
                self._set_status("offline")
            await asyncio.sleep(self.backoff.next_delay())

    async def _read(self) -> None:
        async with self.session.ws_connect(
            websocket_url(self.host),
            max_msg_size=MAX_FRAME_BYTES,
            heartbeat=30.0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=90.0, ws_close=5.0),
        ) as ws:
            self.connected = True
            self.failures = 0
            CONNECTED.inc()
            self._set_status("active")
            log_event(log, "upstream connected", host=self.host.hostname, cursor=self.host.last_seq)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    await self._pace()
                    await self.ingest.handle(self.host, message.data)
                    await self.on_event()
                    self.backoff.reset()
                elif message.type == aiohttp.WSMsgType.ERROR:
                    if (
                        isinstance(message.data, aiohttp.WebSocketError)
                        and message.data.code == 1009
                    ):
                        OVERSIZED.inc()
                    raise aiohttp.ClientError(f"websocket error: {message.data}")
        raise aiohttp.ClientError("the host closed the stream")

    async def _pace(self) -> None:
        while (wait := self.limits.wait_time(self.clock())) > 0:
            THROTTLED.inc()
            self._set_status("throttled")
            await asyncio.sleep(min(wait, 1.0))
        if self.host.status == "throttled":
            self._set_status("active")
