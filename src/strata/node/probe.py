"""What a status page shows of a running service: its health, figures read off its Prometheus
metrics (requests, shedding, firehose lag, breaker states, memory) and its upstreams."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

BREAKER_STATES = {0.0: "closed", 1.0: "half-open", 2.0: "open"}


@dataclass
class ServiceStatus:
    """One service as seen from outside at one moment."""

    name: str
    url: str
    health: str = "unreachable"
    """`ok`, `unhealthy (<status>)` or `unreachable`."""
    latency_ms: float | None = None
    version: str | None = None
    requests: float = 0.0
    """Requests admitted since the service started (a rate is the difference of two probes)."""
    shed: float = 0.0
    in_flight: float = 0.0
    loop_lag_ms: float = 0.0
    firehose_lag_s: float | None = None
    disconnected_s: float | None = None
    memory_bytes: float | None = None
    breakers: list[dict[str, str]] = field(default_factory=list)
    upstreams: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.health == "ok"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def read_metrics(status: ServiceStatus, text: str) -> None:
    """Fill `status` with the figures in a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "strata_requests_total":
                status.requests += value
            elif name == "strata_requests_shed_total":
                status.shed += value
            elif name == "strata_requests_in_flight":
                status.in_flight += value
            elif name == "strata_event_loop_lag_seconds":
                status.loop_lag_ms = max(status.loop_lag_ms, value * 1000)
            elif name == "strata_firehose_lag_seconds":
                status.firehose_lag_s = value
            elif name == "strata_firehose_disconnected_seconds":
                status.disconnected_s = value
            elif name == "process_resident_memory_bytes":
                status.memory_bytes = value
            elif name == "strata_upstream_breaker_state":
                status.breakers.append(
                    {
                        "pool": labels.get("pool", ""),
                        "endpoint": labels.get("endpoint", ""),
                        "state": BREAKER_STATES.get(value, str(value)),
                    }
                )


async def probe(http: aiohttp.ClientSession, name: str, url: str) -> ServiceStatus:
    """Ask one service for its health, metrics and upstreams; never raises."""
    status = ServiceStatus(name, url)
    started = time.perf_counter()
    try:
        async with http.get(f"{url}/xrpc/_health") as response:
            status.latency_ms = round((time.perf_counter() - started) * 1000, 1)
            body = await response.json(content_type=None)
            status.version = body.get("version") if isinstance(body, dict) else None
            status.health = "ok" if response.status == 200 else f"unhealthy ({response.status})"
        async with http.get(f"{url}/metrics") as response:
            if response.status == 200:
                read_metrics(status, await response.text())
        async with http.get(f"{url}/xrpc/_upstreams") as response:
            if response.status == 200:
                body = await response.json(content_type=None)
                status.upstreams = list(body.get("upstreams", []))
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        pass
    return status


async def probe_all(http: aiohttp.ClientSession, services: dict[str, str]) -> list[ServiceStatus]:
    """Probe every service (name to base URL) at once."""
    return list(await asyncio.gather(*(probe(http, name, url) for name, url in services.items())))
