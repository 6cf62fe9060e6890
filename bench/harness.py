"""What the benchmarks share: ports on loopback, Strata services as their own processes,
progress lines, percentiles and a process's memory."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
# Ports, command lines, stopping a process and its memory: the tests' helpers, shared.
sys.path.insert(0, str(ROOT))

from tests.services import free_port, popen_strata, rss_kib, stop_process  # noqa: E402

__all__ = ["free_port", "note", "percentile", "rss_kib", "strata_service", "wait_healthy"]


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
    command: str, data_dir: Path, *args: str
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m strata <command>` as its own process on 127.0.0.1; yields (URL, process)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc, log_path = popen_strata(command, data_dir, port, *args)
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
