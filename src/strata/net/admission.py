"""Admission control for every server: priority lanes, load shedding with 503 + Retry-After.

The policy is `strata.resilience.admission`; this module measures the event loop's lag, sorts
requests into lanes and answers the refused ones. A request is counted only once its body has
arrived (`strata.net.body`), so clients that send slowly do not fill the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from aiohttp import web
from prometheus_client import Counter, Gauge

from strata.net.body import body_arrived, body_too_slow, note_client_gone
from strata.resilience import Admission, Lane, LoopLag

SHED = Counter(
    "strata_requests_shed_total", "Requests refused with 503 by admission control",
    ["service", "lane"],
)  # fmt: skip
IN_FLIGHT = Gauge(
    "strata_requests_in_flight", "Requests being handled, by lane", ["service", "lane"],
    multiprocess_mode="livesum",
)  # fmt: skip
REQUESTS = Counter("strata_requests_total", "Requests admitted, by lane", ["service", "lane"])
LOOP_LAG = Gauge(
    "strata_event_loop_lag_seconds", "How late the event loop runs (the worst of the workers')",
    ["service"], multiprocess_mode="livemax",
)  # fmt: skip

UPSTREAMS_PATH: Final = "/xrpc/_upstreams"
EXEMPT: Final = frozenset({"/xrpc/_health", "/_health", "/metrics", UPSTREAMS_PATH})
BACKFILL_METHODS: Final = frozenset(
    {
        "com.atproto.sync.getRepo",
        "com.atproto.sync.listRepos",
        "com.atproto.sync.getBlocks",
        "com.atproto.sync.listBlobs",
    }
)
LAG_INTERVAL: Final = 0.025

LaneOf = Callable[[web.Request], Lane | None]
"""The lane of a request, or None for one that is always admitted (health, metrics)."""


def default_lane(request: web.Request) -> Lane | None:
    """Account, write and operator calls first, then reads; stream subscriptions; then bulk
    sync (whole repositories, directory exports)."""
    path = request.path
    if path in EXEMPT or path.startswith("/.well-known/"):
        return None
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return Lane.STREAM
    if path.removeprefix("/xrpc/") in BACKFILL_METHODS or path == "/export":
        return Lane.BACKFILL
    if request.method != "GET" or path.startswith(("/admin", "/xrpc/com.atproto.admin.")):
        return Lane.WRITE
    return Lane.READ


class AdmissionControl:
    """One server's admission: the policy, the loop-lag estimate and the middleware."""

    def __init__(self, service: str, capacity: int, lane_of: LaneOf = default_lane) -> None:
        self.service = service
        self.policy = Admission(capacity)
        self.lag = LoopLag()
        self.lane_of = lane_of

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        gauge = LOOP_LAG.labels(self.service)
        while True:
            expected = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            gauge.set(self.lag.sample(loop.time() - expected))

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """Watch the loop's lag while the application runs."""
        task = asyncio.create_task(self._watch_loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        lane = self.lane_of(request)
        if lane is None:
            return await handler(request)
        # Time spent waiting for a client's body is not work: it is not counted.
        try:
            if not await body_arrived(request):
                return body_too_slow(request)
        except ConnectionResetError:
            return note_client_gone(request)
        retry_after = self.policy.enter(lane, self.lag.value)
        if retry_after is not None:
            SHED.labels(self.service, lane.name.lower()).inc()
            return web.json_response(
                {"error": "NotEnoughResources", "message": "Server is busy; retry later"},
                status=503,
                headers={"Retry-After": str(retry_after)},
            )
        REQUESTS.labels(self.service, lane.name.lower()).inc()
        gauge = IN_FLIGHT.labels(self.service, lane.name.lower())
        gauge.inc()
        try:
            return await handler(request)
        finally:
            gauge.dec()
            self.policy.leave(lane)
