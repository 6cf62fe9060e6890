"""Sliding-window rate limits: at most `limit` events in any window of `size` seconds.

The count is estimated from the current fixed window plus the previous one weighted by how much
of it still overlaps, as the reference relay's limiter does; it needs two counters per window,
whatever the rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class SlidingWindow:
    """One limit: `limit` events per `size` seconds."""

    size: float
    limit: int
    _start: float = 0.0
    _current: int = 0
    _previous: int = 0

    def _advance(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed < self.size:
            return
        windows = int(elapsed // self.size)
        self._previous = self._current if windows == 1 else 0
        self._current = 0
        self._start += windows * self.size

    def _estimate(self, now: float) -> float:
        overlap = 1.0 - (now - self._start) / self.size
        return self._previous * overlap + self._current

    def wait_time(self, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        self._advance(now)
        if self._estimate(now) + 1 <= self.limit:
            return 0.0
        if self._current + 1 > self.limit:
            # Full: into the next window, until this one's weight has decayed enough.
            decayed = 1.0 - (self.limit - 1) / self._current
            return self._start + self.size - now + decayed * self.size + 1e-6
        # The previous window's weight decays linearly; wait until enough of it has.
        room = (self.limit - self._current - 1) / self._previous
        return max(0.0, (1.0 - room) * self.size - (now - self._start)) + 1e-6

    def take(self) -> None:
        """Count one event (after `wait_time` said it fits)."""
        self._current += 1


@dataclass
class Limits:
    """Several windows that must all admit an event (per second, per hour, per day, ...)."""

    windows: Sequence[SlidingWindow]

    def wait_time(self, now: float) -> float:
        """Seconds until an event fits in every window; counts it when that is now."""
        wait = max(window.wait_time(now) for window in self.windows)
        if wait == 0.0:
            for window in self.windows:
                window.take()
        return wait


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second: bursts up to the capacity, a steady
    `rate` after that. Starts full."""

    capacity: float
    rate: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many; whether they were spent."""
        self._refill(now)
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def remaining(self, now: float) -> int:
        """Whole tokens left."""
        self._refill(now)
        return int(self.tokens)

    def seconds_until(self, now: float, tokens: float) -> float:
        """Seconds until the bucket holds `tokens` (0 when it already does)."""
        self._refill(now)
        missing = min(tokens, self.capacity) - self.tokens
        return max(0.0, missing / self.rate) if self.rate > 0 else float("inf")


@dataclass
class RetryBudget:
    """Retries and hedged calls allowed as a fraction of first attempts: each call earns
    `ratio` of a token (up to `burst`), each retry spends one. Under overload, when every call
    fails, retries stay a small fraction of the load instead of multiplying it."""

    ratio: float = 0.2
    burst: float = 10.0
    tokens: float = 10.0

    def earn(self) -> None:
        """A first attempt was made."""
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def spend(self) -> bool:
        """Whether one more attempt (a retry or a hedge) is allowed; counts it if so."""
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
