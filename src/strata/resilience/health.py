"""A running score of an upstream's health: recent latency and success, smoothed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HealthScore:
    """Exponentially weighted latency and success rate; `alpha` is the weight of a new call."""

    alpha: float = 0.2
    latency: float = 0.0
    success: float = 1.0

    def record(self, ok: bool, seconds: float) -> None:
        """One call's outcome and duration."""
        self.latency += self.alpha * (seconds - self.latency)
        self.success += self.alpha * ((1.0 if ok else 0.0) - self.success)

    def degraded(self, slow: float) -> bool:
        """Whether to prefer other endpoints: it fails often, or it is slower than `slow`."""
        return self.success < 0.8 or self.latency > slow
