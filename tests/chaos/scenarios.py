"""The chaos scenarios: one fault each, applied to a running network under steady load, and
what was measured while it lasted and after it healed."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from tests.chaos.harness import (
    Load,
    Network,
    caught_up,
    flood,
    flood_result,
    lost_writes,
    metric_sum,
)
from tests.services import eventually


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str
    fault: str  # kill, freeze, slow, drop, overload
    what: str
    load_factor: int = 10
    """For an overload: the flood's rate, in multiples of the steady read rate."""


SCENARIOS: Final = (
    Scenario("plc-kill", "plc", "kill", "the PLC directory is killed; its mirror remains"),
    Scenario("plc-freeze", "plc", "freeze", "the PLC directory hangs (SIGSTOP)"),
    Scenario("pds1-kill", "pds1", "kill", "a PDS is killed (reads measured on the other PDS)"),
    Scenario("pds1-freeze", "pds1", "freeze", "a PDS hangs (reads measured on the other PDS)"),
    Scenario("relay1-kill", "relay1", "kill", "a relay is killed"),
    Scenario("relay1-freeze", "relay1", "freeze", "a relay hangs"),
    Scenario("appview1-kill", "appview1", "kill", "the preferred AppView is killed"),
    Scenario("appview1-freeze", "appview1", "freeze", "the preferred AppView hangs"),
    Scenario("appview1-slow", "proxy", "slow", "the preferred AppView answers 2 s late"),
    Scenario("appview1-drop", "proxy", "drop", "connections to the preferred AppView drop"),
    Scenario("appview2-kill", "appview2", "kill", "the second AppView is killed"),
    Scenario("feedgen-kill", "feedgen", "kill", "the feed generator is killed"),
    Scenario("feedgen-freeze", "feedgen", "freeze", "the feed generator hangs"),
    Scenario("overload", "pds1", "overload", "10 times the steady read rate on one PDS"),
    Scenario("saturation", "pds1", "overload", "100 times the steady read rate on one PDS", 100),
)
BY_NAME: Final = {s.name: s for s in SCENARIOS}
FAST: Final = (
    "appview1-kill",
    "appview1-slow",
    "relay1-kill",
    "feedgen-kill",
    "plc-freeze",
    "pds1-kill",
    "overload",
    "saturation",
)
"""The subset run by the default test command; the rest run with `pytest --chaos-full`."""


@dataclass
class Result:
    scenario: Scenario
    fault_seconds: float
    reads: int = 0
    ok: int = 0
    stale: int = 0
    failed: int = 0
    max_stale_seconds: float = 0.0
    recovery_seconds: float | None = None
    writes: int = 0
    writes_lost: int = 0
    reconnects_per_second: float | None = None
    write_p99_ms: float = 0.0
    shed: float = 0.0
    rss_growth_kib: int = 0
    flood: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def availability(self) -> float:
        return (self.ok + self.stale) / self.reads if self.reads else 1.0


async def _recovered(net: Network, load: Load, http: aiohttp.ClientSession) -> bool:
    """Caught up, and reads through the PDS are fresh again."""
    if not await caught_up(net, load.writes, http):
        return False
    account = load.accounts[0]
    for nsid, params in (
        ("app.bsky.feed.getTimeline", {}),
        ("app.bsky.feed.getFeed", {"feed": net.feed_uri}),
    ):
        try:
            async with http.get(
                f"{account.pds}/xrpc/{nsid}",
                params=params,
                headers={"Authorization": f"Bearer {load.token(account)}"},
            ) as response:
                if response.status != 200 or "strata-stale-seconds" in response.headers:
                    return False
        except (aiohttp.ClientError, OSError):
            return False
    return True


async def _reconnects(net: Network, scenario: Scenario, http: aiohttp.ClientSession) -> float:
    """Connection attempts to the failing component: through the proxy for the first
    AppView, relay reconnects counted by the firehose consumers for a relay."""
    if scenario.target in ("proxy", "appview1"):
        return float(await net.proxy_connections())
    if scenario.target.startswith("relay"):
        total = 0.0
        for name in ("appview1", "appview2", "feedgen"):
            total += await metric_sum(net[name].url, "strata_subscriber_failovers_total", http)
        return total
    return -1.0


async def _shed(net: Network, http: aiohttp.ClientSession) -> float:
    total = 0.0
    for name in ("pds1", "pds2", "appview1", "appview2"):
        total += await metric_sum(net[name].url, "strata_requests_shed_total", http)
    return total


async def run_scenario(
    net: Network,
    load: Load,
    scenario: Scenario,
    fault_seconds: float,
    warm: float = 3.0,
    recovery_limit: float = 90.0,
) -> Result:
    """Warm up under load, apply the fault for `fault_seconds`, heal it, wait for recovery."""
    result = Result(scenario, fault_seconds)
    service = net[scenario.target]
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        load.start()
        await asyncio.sleep(warm)
        reconnects = await _reconnects(net, scenario, http)
        shed = await _shed(net, http)
        rss = {n: net[n].rss_kib() for n in ("pds1", "appview1", "appview2")}
        flooding = None
        start = time.monotonic()
        if scenario.fault == "kill":
            service.kill()
        elif scenario.fault == "freeze":
            service.signal(signal.SIGSTOP)
        elif scenario.fault in ("slow", "drop"):
            await net.proxy_mode(scenario.fault, delay=2.0)
        else:
            account = load.accounts[0]
            token = load.token(account)
            rate = scenario.load_factor * load.reads_per_second
            url = f"{account.pds}/xrpc/app.bsky.feed.getTimeline"
            flooding = flood(url, token, rate, fault_seconds)
        await asyncio.sleep(fault_seconds)
        end = time.monotonic()
        if reconnects >= 0:
            now = await _reconnects(net, scenario, http)
            result.reconnects_per_second = (now - reconnects) / (end - start)
        if flooding is not None:
            result.flood = await loop.run_in_executor(None, flood_result, flooding)
            result.rss_growth_kib = max(net[n].rss_kib() - rss[n] for n in rss)
            result.shed = await _shed(net, http) - shed
        healed = time.monotonic()
        if scenario.fault == "kill":
            service.start()
            await loop.run_in_executor(None, service.wait_healthy)
        elif scenario.fault == "freeze":
            service.signal(signal.SIGCONT)
        elif scenario.fault in ("slow", "drop"):
            await net.proxy_mode("pass")
        try:
            await eventually(lambda: _recovered(net, load, http), recovery_limit, every=0.5)
            result.recovery_seconds = time.monotonic() - healed
        except AssertionError:
            result.recovery_seconds = None
        await load.stop()
        await load.close()
        result.writes_lost = await lost_writes(net, load.writes, http)
    result.writes = len(load.writes)
    pds_down = scenario.target.startswith("pds") and scenario.fault != "overload"
    excluded = service.url if pds_down else ""
    window = [s for s in load.samples if start <= s.at < end and not _on(s.pds, excluded)]
    result.reads = len(window)
    result.ok = sum(s.outcome == "ok" for s in window)
    result.stale = sum(s.outcome == "stale" for s in window)
    result.failed = sum(s.outcome == "fail" for s in window)
    result.max_stale_seconds = max((s.stale_seconds for s in window), default=0.0)
    result.errors = sorted({s.error for s in window if s.error})[:5]
    latencies = sorted(w.latency for w in load.writes if start <= w.at < end)
    if latencies:
        result.write_p99_ms = 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    load.samples.clear()
    return result


def _on(pds_url: str, service_url: str) -> bool:
    """Whether an account's PDS URL (localhost or 127.0.0.1) is the service at `service_url`."""
    return bool(service_url) and pds_url.rsplit(":", 1)[-1] == service_url.rsplit(":", 1)[-1]
