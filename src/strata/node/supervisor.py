"""Running services as child processes: each is started in order and waited for until it is
healthy, restarted with backoff when it exits, and stopped cleanly in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

from strata.net.logs import log_event
from strata.resilience.backoff import Backoff

log = logging.getLogger("strata.node")

START_TIMEOUT: Final = 60.0
STOP_GRACE: Final = 10.0
STABLE_AFTER: Final = 60.0
"""Seconds a restarted service must run before its backoff starts again from one second."""
LIVENESS_EVERY: Final = 5.0
LIVENESS_FAILURES: Final = 6
"""A running service that fails this many health checks in a row (30 s) is hung: it is killed,
and restarted like one that exited."""


class StartFailed(Exception):
    """A service did not become healthy; the message says why and where its log is."""


@dataclass
class Child:
    """One supervised service: its command line, its log file and its health URL."""

    name: str
    argv: list[str]
    log_path: Path
    health_url: str
    env: dict[str, str] | None = None
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    answered: bool = False
    """Whether the running process has passed a health check (it is past starting)."""
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=30.0))

    def last_lines(self, count: int = 5) -> str:
        """The end of the service's log, to show why it failed."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(max(0, self.log_path.stat().st_size - 16384))
                lines = log_file.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-count:])


class Supervisor:
    """Starts, watches and stops a set of `Child` processes."""

    def __init__(
        self,
        echo: Callable[[str], None],
        liveness_every: float = LIVENESS_EVERY,
        liveness_failures: int = LIVENESS_FAILURES,
    ) -> None:
        self.echo = echo
        self.liveness_every = liveness_every
        self.liveness_failures = liveness_failures
        self.children: list[Child] = []
        self.stopping = False
        self.watchers: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Supervisor:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self.http is not None:
            await self.http.close()

    async def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as out:
            # A session of its own: Ctrl-C reaches the supervisor only, which stops the
            # services in order.
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=child.env,
                start_new_session=True,
            )
        child.started_at = time.monotonic()
        child.answered = False

    async def healthy(self, url: str) -> bool:
        """Whether `url` answers 200."""
        assert self.http is not None
        try:
            async with self.http.get(url) as response:
                return response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def start(self, child: Child) -> None:
        """Start `child`, wait until it is healthy, then keep it running."""
        await self._spawn(child)
        try:
            await self._wait_healthy(child)
        except StartFailed:
            await _terminate(child)
            raise
        self.children.append(child)
        self.watchers.append(asyncio.create_task(self._watch(child), name=f"watch {child.name}"))
        self.watchers.append(asyncio.create_task(self._liveness(child), name=f"{child.name} live"))

    async def _wait_healthy(self, child: Child) -> None:
        process = child.process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not await self.healthy(child.health_url):
            if process.returncode is not None:
                raise StartFailed(
                    f"{child.name} exited with code {process.returncode} while starting; "
                    f"its log ({child.log_path}) ends with:\n{child.last_lines()}"
                )
            if time.monotonic() > deadline:
                raise StartFailed(
                    f"{child.name} was not healthy after {START_TIMEOUT:g} s; "
                    f"see its log: {child.log_path}"
                )
            await asyncio.sleep(0.2)
        child.answered = True

    async def _watch(self, child: Child) -> None:
        while not self.stopping:
            assert child.process is not None
            code = await child.process.wait()
            if self.stopping:
                return
            if time.monotonic() - child.started_at > STABLE_AFTER:
                child.backoff.reset()
            delay = child.backoff.next_delay()
            child.restarts += 1
            log_event(
                log, "service exited; restarting", logging.INFO, service=child.name,
                code=code, delay=round(delay, 1), restarts=child.restarts,
            )  # fmt: skip
            self.echo(
                f"{child.name} exited with code {code}; restarting in {delay:.1f} s "
                f"(log: {child.log_path})"
            )
            await asyncio.sleep(delay)
            if not self.stopping:
                await self._spawn(child)

    async def _liveness(self, child: Child) -> None:
        failures = 0
        while not self.stopping:
            await asyncio.sleep(self.liveness_every)
            process = child.process
            starting = not child.answered and time.monotonic() - child.started_at < START_TIMEOUT
            if process is None or process.returncode is not None:
                failures = 0
                continue
            if await self.healthy(child.health_url):
                child.answered = True
                failures = 0
            elif not starting:
                failures += 1
            if failures >= self.liveness_failures:
                failures = 0
                log_event(
                    log, "service hung; killing it", logging.WARNING, service=child.name,
                    seconds=self.liveness_every * self.liveness_failures,
                )  # fmt: skip
                self.echo(f"{child.name} stopped answering its health checks; restarting it")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()

    async def stop(self) -> None:
        """Stop every service, the last started first: SIGTERM, then SIGKILL after a grace."""
        self.stopping = True
        for task in self.watchers:
            task.cancel()
        await asyncio.gather(*self.watchers, return_exceptions=True)
        for child in reversed(self.children):
            await _terminate(child)
        self.children.clear()


async def _terminate(child: Child) -> None:
    process = child.process
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
