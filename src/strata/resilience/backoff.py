"""Exponential backoff with full jitter, for reconnect and retry loops."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays grow from `base` doubling up to `cap`; each is drawn uniformly below its bound so
    that many clients recovering at once do not retry in lockstep."""

    base: float = 0.2
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """The delay before the next attempt."""
        bound = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(bound / 2, bound)

    def reset(self) -> None:
        """Forget past failures after a success."""
        self.attempt = 0
