"""The PDS's rate limits, as the reference PDS sets them, with the headers it sends.

- every client address: 3,000 requests per 5 minutes (`getRepo`, a bulk sync path, apart);
- every account's repository writes: 5,000 points per hour and 35,000 per day, where a create
  costs 3, an update 2 and a delete 1;
- methods with limits of their own (those that send mail), per account or per address.

Each limit is a token bucket (the full amount as a burst, refilled evenly over its window).
Answers carry `RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds) and `-Policy`
(`limit;w=seconds`) for the tightest limit the request counted against; over a limit, 429
`RateLimitExceeded`. Addresses in `bypass_ips`, or a request with the `x-ratelimit-bypass`
header equal to `bypass_key`, are not limited.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from strata.net.errors import XrpcError
from strata.resilience import TokenBucket

WRITE_POINTS: Final = {"create": 3, "update": 2, "delete": 1}
UNLIMITED_PATHS: Final = frozenset({"/xrpc/com.atproto.sync.getRepo", "/xrpc/_health", "/metrics"})
HEADERS_KEY: Final = "strata_ratelimit_headers"
MAX_KEYS: Final = 100_000


@dataclass(frozen=True)
class Limit:
    """`points` per `window` seconds."""

    name: str
    points: int
    window: int


PER_ADDRESS: Final = Limit("global-ip", 3000, 300)
WRITES_PER_HOUR: Final = Limit("repo-write-hour", 5000, 3600)
WRITES_PER_DAY: Final = Limit("repo-write-day", 35000, 86400)


class Buckets:
    """One token bucket per key for a limit; the least recently used dropped past MAX_KEYS."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.limit.points, self.limit.points / self.limit.window)
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket


class RateLimits:
    """Per-address and per-account limits for one PDS."""

    def __init__(
        self,
        enabled: bool = True,
        bypass_ips: Iterable[str] = (),
        bypass_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.bypass_ips = frozenset(bypass_ips)
        self.bypass_key = bypass_key
        self.clock = clock
        self.addresses = Buckets(PER_ADDRESS)
        self.writes = [Buckets(WRITES_PER_HOUR), Buckets(WRITES_PER_DAY)]
        self.methods: dict[Limit, Buckets] = {}

    def _bypassed(self, request: web.Request) -> bool:
        if not self.enabled or request.remote in self.bypass_ips:
            return True
        key = request.headers.get("x-ratelimit-bypass")
        return self.bypass_key is not None and key == self.bypass_key

    def _charge(self, request: web.Request, buckets: Buckets, key: str, points: int) -> None:
        now = self.clock()
        bucket = buckets.get(key)
        spent = bucket.take(now, points)
        limit = buckets.limit
        remaining = bucket.remaining(now)
        wait = bucket.seconds_until(now, points if not spent else limit.points)
        headers = {
            "RateLimit-Limit": str(limit.points),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(int(time.time() + wait)),
            "RateLimit-Policy": f"{limit.points};w={limit.window}",
        }
        if not spent:
            raise XrpcError(429, "RateLimitExceeded", "Rate Limit Exceeded", headers=headers)
        known = request.get(HEADERS_KEY)
        if known is None or remaining < int(known["RateLimit-Remaining"]):
            request[HEADERS_KEY] = headers

    def charge_writes(self, request: web.Request, did: str, actions: Iterable[str]) -> None:
        """Count repository writes against the account's limits; 429 when over one."""
        if self._bypassed(request):
            return
        points = sum(WRITE_POINTS[action] for action in actions)
        for buckets in self.writes:
            self._charge(request, buckets, did, points)

    def charge(self, request: web.Request, limits: Iterable[Limit], key: str) -> None:
        """Count one call of a method with limits of its own against `key` (an account's DID
        or a client address); 429 when over one."""
        if self._bypassed(request):
            return
        for limit in limits:
            buckets = self.methods.get(limit)
            if buckets is None:
                buckets = self.methods[limit] = Buckets(limit)
            self._charge(request, buckets, key, 1)

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        limited = not self._bypassed(request) and request.path not in UNLIMITED_PATHS
        if limited:
            self._charge(request, self.addresses, request.remote or "", 1)
        try:
            response = await handler(request)
        except XrpcError as exc:
            exc.headers = {**request.get(HEADERS_KEY, {}), **exc.headers}
            raise
        if limited and not response.prepared:
            response.headers.update(request.get(HEADERS_KEY, {}))
        return response
