"""What the benchmarks share: ports on loopback, Strata services as their own processes,
progress lines, percentiles, a process's memory and metrics, and a synthetic firehose."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from strata.core.frames import websocket_message

ROOT = Path(__file__).resolve().parents[1]
# Ports, command lines, stopping a process and its memory: the tests' helpers, shared.
sys.path.insert(0, str(ROOT))

from tests.services import free_port, popen_strata, rss_kib, stop_process  # noqa: E402

__all__ = [
    "Firehose",
    "free_port",
    "metric_sum",
    "metrics",
    "note",
    "percentile",
    "rss_kib",
    "strata_service",
    "wait_healthy",
]


def note(text: str) -> None:
    """A progress line, on stderr so that the results on stdout stay a clean table."""
    print(text, file=sys.stderr, flush=True)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile (nearest rank) of values sorted in ascending order."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def wait_healthy(url: str, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait until a service answers `/xrpc/_health`; raise if `alive()` turns false first."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError(f"{url} exited before answering /xrpc/_health")
            try:
                async with http.get(
                    f"{url}/xrpc/_health", timeout=aiohttp.ClientTimeout(total=2)
                ) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy in {timeout:.0f} s")


@contextlib.asynccontextmanager
async def strata_service(
    command: str, data_dir: Path, *args: str, source: Path | None = None
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m strata <command>` as its own process on 127.0.0.1 (from another checkout's
    `src` folder `source` if given); yields (URL, process)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc, log_path = popen_strata(command, data_dir, port, *args, source=source)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            await wait_healthy(url, lambda: proc.poll() is None)
        except RuntimeError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"strata {command}: {exc}; end of its log:\n{tail}") from None
        yield url, proc
    finally:
        stop_process(proc, grace=15)


class Firehose:
    """One synthetic PDS's `subscribeRepos`: prebuilt frames (seq = position + 1), written to
    every subscriber when published; `sent_at[k]` is when frame k went out (time.time())."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.sent_at = array("d")
        self.published = 0
        self.transports: set[asyncio.Transport] = set()
        self.connections = 0

    def add(self, frame: bytes) -> None:
        self.messages.append(websocket_message(frame))

    @property
    def seq(self) -> int:
        return len(self.messages)

    def publish(self, count: int) -> None:
        end = min(self.published + count, len(self.messages))
        batch = self.messages[self.published : end]
        now = time.time()
        for transport in list(self.transports):
            if transport.is_closing():
                self.transports.discard(transport)
            else:
                transport.writelines(batch)
        self.sent_at.extend([now] * len(batch))
        self.published = end

    def buffered(self) -> int:
        return max((t.get_write_buffer_size() for t in self.transports), default=0)

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        cursor = request.query.get("cursor")
        start = self.published if cursor is None else max(0, min(int(cursor), self.published))
        # No await between the backlog and joining the live set: nothing falls in between.
        if start < self.published:
            transport.writelines(self.messages[start : self.published])
        self.transports.add(transport)  # type: ignore[arg-type]
        self.connections += 1
        try:
            async for _ in ws:
                pass
        finally:
            self.transports.discard(transport)  # type: ignore[arg-type]
        return ws


async def metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """A service's Prometheus samples, `name{labels}` -> value."""
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[name] = float(value)
    return samples


def metric_sum(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))
