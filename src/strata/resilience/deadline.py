"""A time budget that shrinks along a call chain.

A request that arrives with 3 s left must not start an upstream call allowed 10 s: each hop
gives the next one what remains of its own budget, less a margin to build its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TIMEOUT_HEADER: Final = "strata-timeout-ms"
"""The header in which a caller tells the next hop how long it will wait for the answer."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """The instant (on some monotonic clock) by which an answer is due."""

    at: float

    @classmethod
    def after(cls, now: float, seconds: float) -> Deadline:
        """A deadline `seconds` from `now`."""
        return cls(now + seconds)

    def remaining(self, now: float) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - now)

    def timeout(self, now: float, cap: float, margin: float = 0.0) -> float:
        """The timeout for one upstream call: what is left less `margin`, at most `cap`."""
        return max(0.0, min(cap, self.remaining(now) - margin))


def parse_timeout_ms(value: str | None, limit: float = 300.0) -> float | None:
    """Seconds from a `TIMEOUT_HEADER` value; None when absent or unusable."""
    if value is None or not value.isdigit() or len(value) > 9:
        return None
    return min(limit, int(value) / 1000)
