"""Admission control: how many requests a server takes on at once, and which go first.

Requests fall into lanes by priority. A lane is admitted while the requests in flight are
below its share of the capacity and, once `busy_floor` requests are in flight, the event
loop keeps up (its lag under the lane's limit; a late loop with few requests in flight is busy
with something else, and refusing those few would not help):
under pressure backfill is refused first, then stream consumers, then reads, and account and
write operations last. A refused request gets a fast 503 with Retry-After instead of a queue
that grows until memory runs out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Lane(enum.IntEnum):
    """Priority lanes, most important first."""

    WRITE = 0
    READ = 1
    STREAM = 2
    BACKFILL = 3


SHARES = {Lane.WRITE: 1.0, Lane.READ: 0.8, Lane.STREAM: 0.6, Lane.BACKFILL: 0.4}
"""The fraction of the capacity each lane may fill."""

MAX_LAG = {Lane.WRITE: float("inf"), Lane.READ: 0.025, Lane.STREAM: 0.1, Lane.BACKFILL: 0.02}
"""Seconds of event-loop lag above which a lane is refused: a server whose loop is late is
already over capacity, whatever the count in flight says."""

RETRY_AFTER = {Lane.WRITE: 1, Lane.READ: 1, Lane.STREAM: 5, Lane.BACKFILL: 10}


@dataclass
class Admission:
    """Counts requests in flight per lane and decides on new ones."""

    capacity: int = 512
    busy_floor: int = 16
    in_flight: dict[Lane, int] = field(default_factory=lambda: dict.fromkeys(Lane, 0))

    @property
    def total(self) -> int:
        return sum(self.in_flight.values())

    def enter(self, lane: Lane, lag: float) -> int | None:
        """Admit a request (None) or refuse it with the seconds to wait before a retry."""
        total = self.total
        late = total >= self.busy_floor and lag > MAX_LAG[lane]
        if total >= self.capacity * SHARES[lane] or late:
            return RETRY_AFTER[lane]
        self.in_flight[lane] += 1
        return None

    def leave(self, lane: Lane) -> None:
        """An admitted request finished."""
        self.in_flight[lane] -= 1


@dataclass
class LoopLag:
    """How late the event loop runs, from the overshoot of a periodic timer: jumps up at once
    and decays by half each sample, so one slow tick is seen at once but not held for long."""

    value: float = 0.0

    def sample(self, overshoot: float) -> float:
        """Record one tick that fired `overshoot` seconds late; the current estimate."""
        self.value = max(max(0.0, overshoot), self.value / 2)
        return self.value
