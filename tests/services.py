"""Strata services running in the test's event loop, on loopback with ephemeral ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from strata.appview.app import create_appview_app
from strata.appview.service import AppView, AppViewConfig
from strata.pds.app import create_pds_app
from strata.pds.config import PdsConfig
from strata.pds.service import Pds
from strata.plc.app import DIRECTORY_KEY, create_plc_app
from strata.plc.directory import Directory
from strata.plc.store import PlcStore
from strata.relay.app import create_relay_app
from strata.relay.config import RelayConfig
from strata.relay.service import Relay
from strata.serve import listening

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = 20.0,
    what: str = "condition",
    accept: Callable[[T], object] = bool,
    every: float = 0.1,
) -> T:
    """Call `check` until `accept` takes what it returns (by default: until it is truthy), and
    return that; fail with `what` after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if accept(result):
                    return result
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout:g} s") from None


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve an application on 127.0.0.1; yields its base URL."""
    async with listening(app, "127.0.0.1", 0) as port:
        yield f"http://127.0.0.1:{port}"


class RunningPlc:
    """A directory served in-process."""

    def __init__(self, url: str, app: web.Application) -> None:
        self.url = url
        self.app = app

    @property
    def directory(self) -> Directory:
        return self.app[DIRECTORY_KEY]


@contextlib.asynccontextmanager
async def running_plc(
    data_dir: Path, mirror_of: Sequence[str] = (), database_url: str | None = None
) -> AsyncIterator[RunningPlc]:
    """A `strata plc` directory (or mirror) with its SQLite file in `data_dir`, or its tables in
    Postgres at `database_url`."""
    store = await PlcStore.open(database_url, data_dir / "plc.sqlite")
    app = create_plc_app(store, mirror_of)
    try:
        async with serving(app) as url:
            yield RunningPlc(url, app)
    finally:
        await store.close()


def _below_ephemeral() -> range:
    """Ports the kernel never hands out by itself: below its range for outgoing connections
    and port-0 listeners (or above it, where that range starts too low to leave room)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(10000, low) if low > 20000 else range(high + 1, 65536)


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a process that will bind it later.

    A port the kernel picked would be in its ephemeral range, where any outgoing connection
    made meanwhile (by the services starting before this one) may take it, and the process
    meant to bind it then fails with "address in use" while whatever holds the port answers
    in its place. So the port is drawn outside that range, and never given twice in a run."""
    candidates = _below_ephemeral()
    for _ in range(1000):
        port = random.choice(candidates)
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {candidates}")


@dataclass
class RunningPds:
    url: str
    pds: Pds


def pds_config(port: int, plc_url: str, **overrides: Any) -> PdsConfig:
    """A dev-mode PDS configuration for loopback tests."""
    settings: dict[str, Any] = {
        "hostname": "localhost",
        "public_url": f"http://localhost:{port}",
        "plc_urls": (plc_url,),
        "dev": True,
        **overrides,
    }
    return PdsConfig(**settings)


@contextlib.asynccontextmanager
async def running_pds(data_dir: Path, plc_url: str, **overrides: Any) -> AsyncIterator[RunningPds]:
    """A `strata pds` served in-process on a free port, in dev mode."""
    port = free_port()
    pds = Pds(pds_config(port, plc_url, **overrides), data_dir)
    async with listening(create_pds_app(pds), "127.0.0.1", port):
        yield RunningPds(f"http://127.0.0.1:{port}", pds)


@dataclass
class RunningRelay:
    url: str
    relay: Relay


@contextlib.asynccontextmanager
async def running_relay(
    data_dir: Path, plc_url: str, **overrides: Any
) -> AsyncIterator[RunningRelay]:
    """A `strata relay` served in-process in dev mode, on `port` or a free one."""
    port = overrides.pop("port", 0)
    config = RelayConfig(**{"plc_urls": (plc_url,), "dev": True, **overrides})
    relay = Relay(config, data_dir)
    async with listening(create_relay_app(relay), "127.0.0.1", port) as bound:
        yield RunningRelay(f"http://127.0.0.1:{bound}", relay)


@dataclass
class RunningAppView:
    url: str
    appview: AppView

    @property
    def did(self) -> str:
        return self.appview.config.did


@contextlib.asynccontextmanager
async def running_appview(
    data_dir: Path,
    plc_url: str,
    relays: Sequence[str],
    port: int = 0,
    database_url: str | None = None,
    labelers: Sequence[str] = (),
) -> AsyncIterator[RunningAppView]:
    """A `strata appview` served in-process in dev mode, on `port` or a free one."""
    port = port or free_port()
    config = AppViewConfig(
        plc_urls=(plc_url,),
        relays=tuple(relays),
        public_url=f"http://localhost:{port}",
        database_url=database_url,
        dev=True,
        labelers=tuple(labelers),
    )
    appview = AppView(config, data_dir)
    async with listening(await create_appview_app(appview), "127.0.0.1", port):
        yield RunningAppView(f"http://127.0.0.1:{port}", appview)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait for a service process to answer `/xrpc/_health`; raise if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/xrpc/_health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")


def strata_argv(command: str, data_dir: Path, port: int, *args: str) -> list[str]:
    """The command line of `strata <command>` on 127.0.0.1:port."""
    return [
        sys.executable, "-m", "strata", command, "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--log-level", "warning", *args,
    ]  # fmt: skip


def popen_strata(
    command: str, data_dir: Path, port: int, *args: str, source: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `strata <command>` on 127.0.0.1:port (from the `src` folder `source` of another
    checkout if given), its output appended to `<data_dir>.log` beside its data directory;
    returns the process and the log's path."""
    log_path = data_dir.parent / f"{data_dir.name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            strata_argv(command, data_dir, port, *args), stdout=log, stderr=log, env=env
        )
    return process, log_path


@contextlib.contextmanager
def service_process(
    command: str, data_dir: Path, *args: str, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `strata <command>` as a real process on 127.0.0.1; yields its URL and process."""
    port = port or free_port()
    process, _ = popen_strata(command, data_dir, port, *args)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, process
    finally:
        stop_process(process, grace=10)


def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def rss_kib(pid: int) -> int:
    """A process's resident memory, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def start_strata(
    command: str, data_dir: Path, port: int, *args: str
) -> asyncio.subprocess.Process:
    """Start `strata <command>` as a process (for crash tests) and wait until it is healthy;
    its output goes to `<data_dir>.log`."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with (data_dir.parent / f"{data_dir.name}.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *strata_argv(command, data_dir, port, *args), stdout=log, stderr=log
        )
    async with aiohttp.ClientSession() as http:
        for _ in range(150):
            try:
                async with http.get(f"http://127.0.0.1:{port}/xrpc/_health") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError(f"strata {command} did not start")


def worker_pids(parent: int) -> list[int]:
    """The processes `parent` started (the workers of a `--workers N` service)."""
    with open(f"/proc/{parent}/task/{parent}/children") as children:
        return [int(pid) for pid in children.read().split()]


async def worker_replaced(parent: int, killed: int, timeout: float, workers: int = 2) -> None:
    """Wait until `parent` runs its `workers` again, the `killed` one no longer among them."""

    async def replaced() -> bool:
        pids = worker_pids(parent)
        return len(pids) == workers and killed not in pids

    await eventually(replaced, timeout, "the killed worker is replaced")


async def stop_workers(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM a `--workers` service: it exits cleanly, and none of its workers outlives it."""
    remaining = worker_pids(proc.pid)
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in remaining)


async def get_ok(http: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    """The JSON answer of a GET that must succeed."""
    async with http.get(url, params=params) as resp:
        assert resp.status == 200, (url, resp.status, await resp.text())
        return await resp.json()


async def metric(http: aiohttp.ClientSession, url: str, series: str) -> float:
    """The value of one series (name and labels) of `url`'s /metrics (0 when absent)."""
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return next(
        (float(line.split()[-1]) for line in text.splitlines() if line.startswith(series + " ")),
        0.0,
    )
