"""Sliding-window limits, driven by a fake clock."""

from __future__ import annotations

from strata.relay.store import Host
from strata.relay.upstream import host_limits, limits_for
from strata.resilience import Limits, SlidingWindow


def admitted(limits: Limits, start: float, seconds: float, step: float = 0.001) -> int:
    """Events admitted when one is offered every `step` seconds for `seconds`."""
    count, now = 0, start
    while now < start + seconds:
        if limits.wait_time(now) == 0.0:
            count += 1
        now += step
    return count


def test_a_window_admits_its_limit() -> None:
    limits = Limits([SlidingWindow(1.0, 50)])
    assert admitted(limits, 1000.0, 1.0) == 50
    # The next window still counts the previous one, weighted by its overlap.
    assert 40 <= admitted(limits, 1001.0, 1.0) <= 50
    assert 145 <= admitted(limits, 1002.0, 3.0) <= 151


def test_wait_time_says_when_the_next_event_fits() -> None:
    window = SlidingWindow(1.0, 2)
    limits = Limits([window])
    assert limits.wait_time(10.0) == 0.0 and limits.wait_time(10.1) == 0.0
    wait = limits.wait_time(10.2)
    # The window [10, 11) is full; from 11 its weight decays to room for one at 11.5.
    assert 1.29 < wait <= 1.31
    assert limits.wait_time(10.2 + wait) == 0.0


def test_every_window_must_admit() -> None:
    limits = Limits([SlidingWindow(1.0, 100), SlidingWindow(60.0, 10)])
    assert admitted(limits, 0.0, 5.0) == 10


def test_host_limits_follow_the_reference_relay() -> None:
    def caps(limits: Limits) -> list[int]:
        return [w.limit for w in limits.windows]

    assert caps(host_limits(100, trusted=False)) == [50, 2_600, 21_000]
    assert caps(host_limits(50_000, trusted=False)) == [100, 52_500, 520_000]
    assert caps(host_limits(100, trusted=True)) == [5_000, 50_000_000, 500_000_000]
    # A relay the operator follows carries every host's events: it gets the trusted tier.
    relay = Host(1, "relay.example", False, "relay", "active", 100, False, False, 0, 0)
    pds = Host(2, "pds.example", False, "pds", "active", 100, False, False, 0, 0)
    assert caps(limits_for(relay)) == [5_000, 50_000_000, 500_000_000]
    assert caps(limits_for(pds)) == [50, 2_600, 21_000]
