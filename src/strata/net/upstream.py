"""Calls to a service that has several interchangeable endpoints (a primary and mirrors, two
AppViews, two relays).

Each endpoint has a circuit breaker, a bulkhead (a cap on its calls in flight) and a health
score. A read goes to the healthiest endpoint first, in configured order among equals; if that
has not answered after `hedge_after` seconds the next one is tried in parallel, and the first
answer wins; when every endpoint failed it is retried once after a jittered pause. Hedges and
retries draw on a retry budget, so an overloaded upstream sees a few extra calls, not twice its
load. A write (not idempotent) goes to one endpoint, once. Every attempt's timeout is cut to
what is left of the caller's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from strata.net.logs import log_event
from strata.resilience import (
    Backoff,
    BreakerState,
    CircuitBreaker,
    Deadline,
    HealthScore,
    RetryBudget,
)

log = logging.getLogger("strata.net.upstream")

T = TypeVar("T")

CALLS = Counter(
    "strata_upstream_calls_total", "Calls to upstream endpoints", ["pool", "endpoint", "outcome"]
)
LATENCY = Histogram(
    "strata_upstream_latency_seconds",
    "Duration of upstream calls that answered",
    ["pool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BREAKER = Gauge(
    "strata_upstream_breaker_state",
    "Circuit breaker per upstream endpoint: 0 closed, 1 half-open, 2 open",
    ["pool", "endpoint"],
    multiprocess_mode="livemax",
)
STALE_ANSWERS = Counter(
    "strata_stale_answers_total", "Remembered answers served because upstreams failed",
    ["service", "method"],
)  # fmt: skip
BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class UpstreamUnavailable(Exception):
    """No endpoint of the pool gave an answer; `causes` holds what each attempt raised."""

    def __init__(self, message: str, causes: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.causes = list(causes)


@dataclass
class Endpoint:
    """One endpoint of a pool, with its breaker, bulkhead and health."""

    url: str
    breaker: CircuitBreaker
    max_in_flight: int
    in_flight: int = 0
    last_error: str = ""
    health: HealthScore = field(default_factory=HealthScore)
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.max_in_flight)


class UpstreamPool:
    """An ordered list of endpoints for one kind of upstream, called with failover."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        timeout: float = 3.0,
        hedge_after: float = 0.25,
        max_in_flight: int = 64,
        failure_threshold: int = 3,
        reset_after: float = 5.0,
        retries: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError(f"upstream pool {name!r} needs at least one endpoint")
        self.name = name
        self.timeout = timeout
        self.hedge_after = hedge_after
        self.retries = retries
        self.clock = clock
        self.budget = RetryBudget()
        self.endpoints = [
            Endpoint(url.rstrip("/"), CircuitBreaker(failure_threshold, reset_after), max_in_flight)
            for url in urls
        ]
        # Bound once: the states are published on every call.
        self._gauges = [BREAKER.labels(name, endpoint.url) for endpoint in self.endpoints]
        self._publish()

    def states(self) -> dict[str, str]:
        """Each endpoint's breaker state, for status pages."""
        return {ep.url: ep.breaker.state.value for ep in self.endpoints}

    def describe(self, kind: str) -> list[dict[str, Any]]:
        """Each endpoint as `/xrpc/_upstreams` lists it: its breaker state, and whether it is
        the one the next call goes to first (not the first configured one means a fallback
        is in use)."""
        first = next(iter(self._candidates()), None)
        return [
            {"kind": kind, "url": ep.url, "state": ep.breaker.state.value, "inUse": ep is first}
            for ep in self.endpoints
        ]

    def _candidates(self) -> list[Endpoint]:
        now = self.clock()
        available = [ep for ep in self.endpoints if ep.breaker.available(now)]
        # Stable sort: configured order among equals. A full bulkhead (busy, maybe hanging)
        # and a poor health score send an endpoint to the back.
        return sorted(
            available,
            key=lambda ep: (
                ep.in_flight >= ep.max_in_flight,
                ep.health.degraded(4 * self.hedge_after, now),
            ),
        )

    def _publish(self) -> None:
        for ep, gauge in zip(self.endpoints, self._gauges, strict=True):
            gauge.set(BREAKER_VALUES[ep.breaker.state])

    def _failed(self, endpoint: Endpoint, error: str, seconds: float) -> None:
        was_open = endpoint.breaker.state is BreakerState.OPEN
        endpoint.breaker.record_failure(self.clock())
        endpoint.health.record(False, seconds, self.clock())
        endpoint.last_error = error[:200]
        CALLS.labels(self.name, endpoint.url, "failure").inc()
        self._publish()
        if endpoint.breaker.state is BreakerState.OPEN and not was_open:
            log_event(
                log,
                "upstream circuit opened",
                logging.WARNING,
                pool=self.name,
                endpoint=endpoint.url,
                error=endpoint.last_error,
            )

    async def _attempt(
        self, endpoint: Endpoint, fn: Callable[[str], Awaitable[T]], timeout: float
    ) -> T:
        endpoint.in_flight += 1
        started = self.clock()
        try:
            async with asyncio.timeout(timeout):
                async with endpoint.slots:
                    result = await fn(endpoint.url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(endpoint, f"{type(exc).__name__}: {exc}", self.clock() - started)
            raise
        finally:
            endpoint.in_flight -= 1
        elapsed = self.clock() - started
        recovered = endpoint.breaker.state is not BreakerState.CLOSED
        endpoint.breaker.record_success(self.clock())
        endpoint.health.record(True, elapsed, self.clock())
        LATENCY.labels(self.name).observe(elapsed)
        CALLS.labels(self.name, endpoint.url, "success").inc()
        if recovered:
            self._publish()
            log_event(log, "upstream circuit closed", pool=self.name, endpoint=endpoint.url)
        return result

    def _timeout(self, deadline: Deadline | None) -> float:
        if deadline is None:
            return self.timeout
        return deadline.timeout(self.clock(), self.timeout)

    async def call(
        self,
        fn: Callable[[str], Awaitable[T]],
        *,
        idempotent: bool = True,
        deadline: Deadline | None = None,
    ) -> T:
        """Call `fn(base_url)` on the pool's endpoints until one returns.

        `fn` raises for a failure (network error, bad status, unusable answer) and returns for an
        answer, including an authoritative "not found". Raises `UpstreamUnavailable` when every
        endpoint failed, is switched off by its breaker, or the deadline passed.
        """
        self.budget.earn()
        errors: list[str] = []
        causes: list[BaseException] = []
        backoff = Backoff(base=0.1, cap=1.0)
        for round_ in range(self.retries + 1 if idempotent else 1):
            if round_ > 0:
                pause = backoff.next_delay()
                if self._timeout(deadline) <= pause or not self.budget.spend():
                    break
                await asyncio.sleep(pause)
            candidates = self._candidates()
            if not idempotent:
                candidates = candidates[:1]
            if not candidates:
                errors.append("every endpoint is failing (circuit open)")
                continue
            try:
                return await self._round(candidates, fn, deadline, errors, causes)
            except UpstreamUnavailable:
                continue
        message = f"{self.name}: no endpoint answered ({'; '.join(errors)})"
        raise UpstreamUnavailable(message, causes)

    async def _round(
        self,
        candidates: list[Endpoint],
        fn: Callable[[str], Awaitable[T]],
        deadline: Deadline | None,
        errors: list[str],
        causes: list[BaseException],
    ) -> T:
        pending: dict[asyncio.Task[T], Endpoint] = {}
        started: dict[str, float] = {}
        first = True
        try:
            while candidates or pending:
                # The first attempt is free; each further one (a hedge, or a failover after
                # an error) spends from the retry budget.
                if candidates and (first or self.budget.spend()):
                    timeout = self._timeout(deadline)
                    if timeout <= 0:
                        errors.append("deadline passed")
                        candidates.clear()
                    else:
                        endpoint = candidates.pop(0)
                        # Claim the breaker's probe only now, for a call that is made.
                        if endpoint.breaker.allow(self.clock()):
                            started[endpoint.url] = self.clock()
                            task = asyncio.create_task(self._attempt(endpoint, fn, timeout))
                            pending[task] = endpoint
                            first = False
                        self._publish()
                elif candidates:
                    errors.append("retry budget spent")
                    candidates.clear()
                if not pending:
                    break
                wait = self.hedge_after if candidates else None
                done, _ = await asyncio.wait(
                    pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    del pending[task]
                    exc = task.exception()
                    if exc is None:
                        # Outrun by a hedge: too slow counts as failing, so that a hanging
                        # endpoint's breaker opens and later calls skip the hedge delay.
                        now = self.clock()
                        for loser in pending.values():
                            slower = now - started[loser.url]
                            self._failed(loser, "slower than another endpoint", slower)
                        return task.result()
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    causes.append(exc)
        finally:
            for task in pending:
                task.cancel()
        raise UpstreamUnavailable(self.name)


class UpstreamRegistry:
    """Single-endpoint pools for upstreams found at run time (feed generators, PDSes), made on
    first use, at most `capacity` of them (least recently used dropped)."""

    def __init__(self, name: str, capacity: int = 1000, **pool_options: Any) -> None:
        self.name = name
        self.capacity = capacity
        self.pool_options = pool_options
        self._pools: OrderedDict[str, UpstreamPool] = OrderedDict()

    def pool(self, url: str) -> UpstreamPool:
        """The pool for the endpoint at `url`."""
        url = url.rstrip("/")
        pool = self._pools.get(url)
        if pool is None:
            pool = UpstreamPool(self.name, [url], **self.pool_options)
            self._pools[url] = pool
            while len(self._pools) > self.capacity:
                _, dropped = self._pools.popitem(last=False)
                BREAKER.remove(self.name, dropped.endpoints[0].url)
        self._pools.move_to_end(url)
        return pool

    def pools(self) -> list[UpstreamPool]:
        """The pools made so far, least recently used first."""
        return list(self._pools.values())
