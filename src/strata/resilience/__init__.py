"""Pure resilience policies: no I/O, no clocks of their own (time is passed in), no threads.

The network layer (`strata.net`) applies them to real calls; keeping them pure lets tests drive
them through every state with a fake clock.
"""

from strata.resilience.backoff import Backoff
from strata.resilience.breaker import BreakerState, CircuitBreaker
from strata.resilience.cache import CacheHit, StaleCache
from strata.resilience.ratelimit import Limits, SlidingWindow

__all__ = [
    "Backoff",
    "BreakerState",
    "CacheHit",
    "CircuitBreaker",
    "Limits",
    "SlidingWindow",
    "StaleCache",
]
