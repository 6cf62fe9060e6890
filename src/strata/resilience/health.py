"""A running score of an upstream's health: recent latency and success, smoothed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HealthScore:
    """Exponentially weighted latency and success rate; `alpha` is the weight of a new call.

    A degraded endpoint gets no traffic while others are healthy, so its score would never
    improve: `forgive_after` seconds after its last failure it starts afresh, and the
    configured order holds again until it fails again."""

    alpha: float = 0.2
    forgive_after: float = 30.0
    latency: float = 0.0
    success: float = 1.0
    last_failure: float = float("-inf")

    def record(self, ok: bool, seconds: float, now: float) -> None:
        """One call's outcome and duration."""
        self.latency += self.alpha * (seconds - self.latency)
        self.success += self.alpha * ((1.0 if ok else 0.0) - self.success)
        if not ok:
            self.last_failure = now

    def degraded(self, slow: float, now: float) -> bool:
        """Whether to prefer other endpoints: it fails often, or it is slower than `slow`."""
        if self.last_failure > float("-inf") and now - self.last_failure > self.forgive_after:
            self.latency, self.success = min(self.latency, slow), 1.0
            self.last_failure = float("-inf")
        return self.success < 0.8 or self.latency > slow
