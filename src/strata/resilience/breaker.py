"""A circuit breaker: stop calling an upstream that keeps failing, probe it again later."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures, or when at least `min_calls` calls
    in the last `window` seconds failed at a rate of `failure_rate` or more (an upstream that
    fails every other call never reaches the consecutive count, yet is unhealthy). After
    `reset_after` seconds one probe call is let through (half-open), and its outcome closes or
    re-opens the circuit."""

    failure_threshold: int = 3
    reset_after: float = 5.0
    failure_rate: float = 0.5
    min_calls: int = 20
    window: float = 10.0
    state: BreakerState = field(default=BreakerState.CLOSED)
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    # Calls and failures in the current and the previous window, as a sliding estimate.
    _window_start: float = 0.0
    _calls: tuple[int, int] = (0, 0)
    _failed: tuple[int, int] = (0, 0)

    def available(self, now: float) -> bool:
        """Whether `allow` would let a call through at `now` (without claiming the probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            return now - self.opened_at >= self.reset_after
        return not self.probing

    def allow(self, now: float) -> bool:
        """Whether a call may go to the upstream at time `now`; in the half-open state this
        claims the one probe, so call it only for a call that will be made."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.reset_after:
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.state is BreakerState.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def _count(self, now: float, failed: bool) -> None:
        elapsed = now - self._window_start
        if elapsed >= self.window:
            if elapsed < 2 * self.window:
                self._calls, self._failed = (0, self._calls[0]), (0, self._failed[0])
            else:
                self._calls, self._failed = (0, 0), (0, 0)
            self._window_start = now - (elapsed % self.window)
        self._calls = (self._calls[0] + 1, self._calls[1])
        self._failed = (self._failed[0] + int(failed), self._failed[1])

    def error_rate(self, now: float) -> tuple[float, float]:
        """The estimated (calls, failures) over the last `window` seconds."""
        weight = max(0.0, 1.0 - (now - self._window_start) / self.window)
        calls = self._calls[0] + self._calls[1] * weight
        failed = self._failed[0] + self._failed[1] * weight
        return calls, failed

    def record_success(self, now: float) -> None:
        """A call succeeded: the upstream is healthy again."""
        self._count(now, failed=False)
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probing = False

    def record_failure(self, now: float) -> None:
        """A call failed (error or timeout)."""
        self._count(now, failed=True)
        self.failures += 1
        calls, failed = self.error_rate(now)
        too_many = calls >= self.min_calls and failed >= self.failure_rate * calls
        if (
            self.state is BreakerState.HALF_OPEN
            or self.failures >= self.failure_threshold
            or too_many
        ):
            self.state = BreakerState.OPEN
            self.opened_at = now
            self.probing = False
            # A fresh window after a probe, so that old failures do not re-open it at once.
            self._calls, self._failed = (0, 0), (0, 0)
            self._window_start = now
