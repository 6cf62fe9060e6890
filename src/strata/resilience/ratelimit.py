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
