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
    """Opens after `failure_threshold` consecutive failures; after `reset_after` seconds one
    probe call is let through (half-open), and its outcome closes or re-opens the circuit."""

    failure_threshold: int = 3
    reset_after: float = 5.0
    state: BreakerState = field(default=BreakerState.CLOSED)
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def allow(self, now: float) -> bool:
        """Whether a call may go to the upstream at time `now`."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.reset_after:
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.state is BreakerState.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: the upstream is healthy again."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probing = False

    def record_failure(self, now: float) -> None:
        """A call failed (error or timeout)."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now
            self.probing = False
