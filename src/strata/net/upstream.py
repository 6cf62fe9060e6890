"""Calls to a service that has several interchangeable endpoints (a primary and mirrors).

Each endpoint has a circuit breaker and a bulkhead (a cap on calls in flight). A call goes to
the first healthy endpoint; if that has not answered after `hedge_after` seconds, the next one is
tried in parallel, and the first answer wins. So a directory that hangs costs one hedge delay,
not a timeout, and one that keeps failing is skipped until its breaker lets a probe through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client import Counter

from strata.net.logs import log_event
from strata.resilience import BreakerState, CircuitBreaker

log = logging.getLogger("strata.net.upstream")

T = TypeVar("T")

CALLS = Counter(
    "strata_upstream_calls_total", "Calls to upstream endpoints", ["pool", "endpoint", "outcome"]
)


class UpstreamUnavailable(Exception):
    """No endpoint of the pool gave an answer."""


@dataclass
class Endpoint:
    """One endpoint of a pool, with its breaker and bulkhead."""

    url: str
    breaker: CircuitBreaker
    max_in_flight: int
    in_flight: int = 0
    last_error: str = ""
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError(f"upstream pool {name!r} needs at least one endpoint")
        self.name = name
        self.timeout = timeout
        self.hedge_after = hedge_after
        self.clock = clock
        self.endpoints = [
            Endpoint(url.rstrip("/"), CircuitBreaker(failure_threshold, reset_after), max_in_flight)
            for url in urls
        ]

    def _candidates(self) -> list[Endpoint]:
        now = self.clock()
        allowed = [ep for ep in self.endpoints if ep.breaker.allow(now)]
        # An endpoint whose bulkhead is full is tried last: it is busy, maybe hanging.
        return sorted(allowed, key=lambda ep: ep.in_flight >= ep.max_in_flight)

    def _failed(self, endpoint: Endpoint, error: str) -> None:
        was_open = endpoint.breaker.state is BreakerState.OPEN
        endpoint.breaker.record_failure(self.clock())
        endpoint.last_error = error[:200]
        CALLS.labels(self.name, endpoint.url, "failure").inc()
        if endpoint.breaker.state is BreakerState.OPEN and not was_open:
            log_event(
                log,
                "upstream circuit opened",
                logging.WARNING,
                pool=self.name,
                endpoint=endpoint.url,
                error=endpoint.last_error,
            )

    async def _attempt(self, endpoint: Endpoint, fn: Callable[[str], Awaitable[T]]) -> T:
        endpoint.in_flight += 1
        try:
            async with asyncio.timeout(self.timeout):
                async with endpoint.slots:
                    result = await fn(endpoint.url)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(endpoint, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            endpoint.in_flight -= 1
        endpoint.breaker.record_success()
        CALLS.labels(self.name, endpoint.url, "success").inc()
        return result

    async def call(self, fn: Callable[[str], Awaitable[T]]) -> T:
        """Call `fn(base_url)` on the pool's endpoints until one returns.

        `fn` raises for a failure (network error, bad status, unusable answer) and returns for an
        answer, including an authoritative "not found". Raises `UpstreamUnavailable` when every
        endpoint failed or is switched off by its breaker.
        """
        candidates = self._candidates()
        if not candidates:
            raise UpstreamUnavailable(f"{self.name}: every endpoint is failing (circuit open)")
        pending: dict[asyncio.Task[T], Endpoint] = {}
        errors: list[str] = []
        try:
            while candidates or pending:
                if candidates:
                    endpoint = candidates.pop(0)
                    pending[asyncio.create_task(self._attempt(endpoint, fn))] = endpoint
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
                        for loser in pending.values():
                            self._failed(loser, "slower than another endpoint")
                        return task.result()
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            for task in pending:
                task.cancel()
        raise UpstreamUnavailable(f"{self.name}: no endpoint answered ({'; '.join(errors)})")
