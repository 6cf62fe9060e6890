"""Pure resilience policies: no I/O, no clocks of their own (time is passed in), no threads.

The network layer (`strata.net`) applies them to real calls; keeping them pure lets tests drive
them through every state with a fake clock.
"""

from strata.resilience.admission import Admission, Lane, LoopLag
from strata.resilience.backoff import Backoff
from strata.resilience.breaker import BreakerState, CircuitBreaker
from strata.resilience.cache import CacheHit, StaleCache
from strata.resilience.deadline import TIMEOUT_HEADER, Deadline, parse_timeout_ms
from strata.resilience.health import HealthScore
from strata.resilience.ratelimit import Limits, RetryBudget, SlidingWindow, TokenBucket

__all__ = [
    "TIMEOUT_HEADER",
    "Admission",
    "Backoff",
    "BreakerState",
    "CacheHit",
    "CircuitBreaker",
    "Deadline",
    "HealthScore",
    "Lane",
    "Limits",
    "LoopLag",
    "RetryBudget",
    "SlidingWindow",
    "StaleCache",
    "TokenBucket",
    "parse_timeout_ms",
]
