"""What the benchmarks share: ports on loopback, and waiting for a service process."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import aiohttp


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
