"""The pure resilience policies, driven through their states with a fake clock."""

from __future__ import annotations

import random

from strata.resilience import (
    Admission,
    Backoff,
    BreakerState,
    CircuitBreaker,
    Deadline,
    HealthScore,
    Lane,
    LoopLag,
    RetryBudget,
    StaleCache,
    TokenBucket,
    parse_timeout_ms,
)


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
    breaker.record_success(22.35)
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


def test_breaker_opens_on_error_rate_without_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=3, min_calls=20, failure_rate=0.5, window=10.0)
    now, calls = 0.0, 0
    while breaker.state is BreakerState.CLOSED and calls < 40:
        breaker.record_success(now)  # every other call fails: never three in a row
        breaker.record_failure(now + 0.1)
        now, calls = now + 0.2, calls + 2
    assert breaker.state is BreakerState.OPEN and calls == 20
    calls, failed = breaker.error_rate(now)
    assert calls == 0 and failed == 0  # a fresh window after opening


def test_breaker_error_rate_forgets_old_windows() -> None:
    breaker = CircuitBreaker(failure_threshold=100, min_calls=10, failure_rate=0.5, window=10.0)
    for i in range(9):
        breaker.record_failure(float(i) / 10)
    assert breaker.state is BreakerState.CLOSED  # fewer than min_calls
    for i in range(20):
        breaker.record_success(100.0 + i / 10)
    breaker.record_failure(103.0)
    assert breaker.state is BreakerState.CLOSED  # the old failures have aged out


def test_token_bucket_bursts_then_refills() -> None:
    bucket = TokenBucket(capacity=3, rate=1.0)
    assert all(bucket.take(0.0) for _ in range(3))
    assert not bucket.take(0.0) and bucket.remaining(0.0) == 0
    assert bucket.seconds_until(0.0, 1) == 1.0
    assert bucket.take(1.0) and not bucket.take(1.5)
    assert bucket.remaining(100.0) == 3  # never more than the capacity
    assert bucket.take(100.0, cost=3) and not bucket.take(100.0, cost=1)


def test_retry_budget_is_a_fraction_of_calls() -> None:
    budget = RetryBudget(ratio=0.25, burst=2.0, tokens=0.0)
    retries = 0
    for _ in range(100):
        budget.earn()
        retries += budget.spend()
    assert retries == 25


def test_deadline_shrinks_timeouts() -> None:
    deadline = Deadline.after(10.0, 3.0)
    assert deadline.remaining(11.0) == 2.0
    assert deadline.timeout(11.0, cap=10.0, margin=0.5) == 1.5
    assert deadline.timeout(11.0, cap=1.0) == 1.0
    assert deadline.timeout(14.0, cap=1.0) == 0.0 and deadline.remaining(14.0) == 0.0
    assert parse_timeout_ms("2500") == 2.5
    assert parse_timeout_ms("-1") is None and parse_timeout_ms(None) is None
    assert parse_timeout_ms("9" * 20) is None and parse_timeout_ms("999999999") == 300.0


def test_admission_sheds_low_lanes_first() -> None:
    admission = Admission(capacity=10, busy_floor=5)
    for _ in range(4):
        assert admission.enter(Lane.BACKFILL, lag=0.0) is None
    assert admission.enter(Lane.BACKFILL, lag=0.0) == 10  # 40 % of the capacity
    for _ in range(2):
        assert admission.enter(Lane.STREAM, lag=0.0) is None
    assert admission.enter(Lane.STREAM, lag=0.0) is not None
    for _ in range(2):
        assert admission.enter(Lane.READ, lag=0.0) is None
    assert admission.enter(Lane.READ, lag=0.0) == 1
    for _ in range(2):
        assert admission.enter(Lane.WRITE, lag=5.0) is None  # writes ignore the lag
    assert admission.enter(Lane.WRITE, lag=0.0) is not None and admission.total == 10
    admission.leave(Lane.READ)
    assert admission.enter(Lane.READ, lag=1.0) is not None  # the loop is late: reads wait
    assert admission.enter(Lane.WRITE, lag=1.0) is None


def test_admission_ignores_lag_when_few_requests_are_in_flight() -> None:
    admission = Admission(capacity=100, busy_floor=3)
    assert admission.enter(Lane.READ, lag=1.0) is None
    assert admission.enter(Lane.BACKFILL, lag=1.0) is None
    assert admission.enter(Lane.READ, lag=1.0) is None
    assert admission.enter(Lane.READ, lag=1.0) == 1
    assert admission.enter(Lane.READ, lag=0.0) is None


def test_loop_lag_jumps_and_decays() -> None:
    lag = LoopLag()
    assert lag.sample(0.4) == 0.4
    assert lag.sample(0.0) == 0.2
    assert lag.sample(-0.01) == 0.1  # an early tick is no lag
    assert lag.sample(0.3) == 0.3


def test_health_score_degrades_on_failures_and_slowness_then_forgives() -> None:
    health = HealthScore(alpha=0.5, forgive_after=30.0)
    health.record(True, 0.01, now=0.0)
    assert not health.degraded(slow=1.0, now=0.0)
    health.record(False, 0.01, now=1.0)
    assert health.degraded(slow=1.0, now=2.0)  # success 0.5
    assert not health.degraded(slow=1.0, now=32.0)  # no failure for 30 s: a fresh start
    health = HealthScore(alpha=0.5)
    for _ in range(4):
        health.record(True, 3.0, now=0.0)
    assert health.degraded(slow=1.0, now=0.0)


def test_breaker_availability_does_not_claim_the_probe() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0)
    breaker.record_failure(0.0)
    assert not breaker.available(1.0)
    assert breaker.available(6.0) and breaker.available(6.0)  # asking twice claims nothing
    assert breaker.allow(6.0) and not breaker.available(6.1) and not breaker.allow(6.1)


def test_cache_bounded_by_weight() -> None:
    cache: StaleCache[str, bytes] = StaleCache(weigh=len, max_weight=10)
    cache.put("a", b"12345", now=0)
    cache.put("b", b"12345", now=0)
    cache.put("c", b"123", now=0)  # evicts "a"
    assert cache.get("a", now=0) is None and cache.weight == 8
    cache.put("b", b"1", now=0)  # a replacement is weighed again
    assert cache.weight == 4
    cache.put("huge", b"x" * 11, now=0)  # larger than the bound: not kept
    assert cache.get("huge", now=0) is None and cache.weight == 4
