"""The pure resilience policies, driven through their states with a fake clock."""

from __future__ import annotations

import random

from strata.resilience import Backoff, BreakerState, CircuitBreaker, StaleCache


def test_breaker_opens_probes_and_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_after=10.0)
    for t in range(2):
        breaker.record_failure(float(t))
        assert breaker.allow(float(t))
    breaker.record_failure(2.0)
    assert breaker.state is BreakerState.OPEN and not breaker.allow(5.0)
    assert breaker.allow(12.0)  # one probe after reset_after
    assert not breaker.allow(12.1)  # and only one at a time
    breaker.record_failure(12.2)  # a failed probe re-opens at once
    assert breaker.state is BreakerState.OPEN and not breaker.allow(20.0)
    assert breaker.allow(22.3)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow(22.4)
    breaker.record_failure(23.0)
    assert breaker.state is BreakerState.CLOSED  # the count restarted after the success


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    bounds = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(bound / 2 <= delay <= bound for delay, bound in zip(delays, bounds, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_cache_fresh_stale_expired_and_negative() -> None:
    cache: StaleCache[str, str] = StaleCache(
        capacity=2, fresh_for=10, serve_stale_for=100, negative_for=5
    )
    cache.put("a", "A", now=0)
    hit = cache.get("a", now=5)
    assert hit is not None and hit.fresh and hit.value == "A"
    hit = cache.get("a", now=50)
    assert hit is not None and not hit.fresh and hit.age == 50
    assert cache.get("a", now=101) is None and len(cache) == 0

    cache.put("missing", None, now=0)
    hit = cache.get("missing", now=4)
    assert hit is not None and hit.value is None and hit.fresh
    assert cache.get("missing", now=6) is None


def test_cache_evicts_least_recently_used() -> None:
    cache: StaleCache[str, int] = StaleCache(capacity=2)
    cache.put("a", 1, now=0)
    cache.put("b", 2, now=0)
    cache.get("a", now=1)
    cache.put("c", 3, now=2)
    assert cache.get("b", now=2) is None
    assert cache.get("a", now=2) is not None and cache.get("c", now=2) is not None
    cache.discard("a")
    assert cache.get("a", now=2) is None
