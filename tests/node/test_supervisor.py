"""The supervisor: services started once healthy, restarted with backoff, stopped in order."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from strata.node.supervisor import Child, StartFailed, Supervisor
from tests.services import eventually, free_port

SERVER = """
import sys, http.server
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def server_child(tmp_path: Path, name: str = "svc") -> Child:
    port = free_port()
    return Child(
        name,
        [sys.executable, "-c", SERVER, str(port)],
        tmp_path / "logs" / f"{name}.log",
        f"http://127.0.0.1:{port}/xrpc/_health",
    )


def replaced(supervisor: Supervisor, child: Child, pid: int) -> Callable[[], Awaitable[bool]]:
    """A check that `child` runs as a new process (not `pid`) and answers its health check."""

    async def check() -> bool:
        process = child.process
        return (
            process is not None
            and process.pid != pid
            and await supervisor.healthy(child.health_url)
        )

    return check


async def test_a_killed_service_is_restarted(tmp_path: Path) -> None:
    said: list[str] = []
    async with Supervisor(said.append) as supervisor:
        child = server_child(tmp_path)
        await supervisor.start(child)
        assert child.process is not None
        first = child.process.pid
        os.kill(first, signal.SIGKILL)
        await eventually(replaced(supervisor, child, first), timeout=15, what="restart")
        assert child.restarts == 1
        assert said and "svc exited with code -9; restarting in" in said[0]
    # Stopped on leaving: the process is gone.
    assert child.process.returncode is not None


async def test_backoff_grows_while_a_service_keeps_failing(tmp_path: Path) -> None:
    child = server_child(tmp_path)
    delays = [child.backoff.next_delay() for _ in range(7)]
    # Each delay is drawn from the upper half of its bound: 1 s doubling, capped at 30 s.
    for delay, bound in zip(delays, (1, 2, 4, 8, 16, 30, 30), strict=True):
        assert bound / 2 <= delay <= bound


async def test_a_service_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    child = Child(
        "broken",
        [sys.executable, "-c", "import sys; print('cannot listen on 1.2.3.4'); sys.exit(3)"],
        tmp_path / "logs" / "broken.log",
        f"http://127.0.0.1:{free_port()}/xrpc/_health",
    )
    async with Supervisor(lambda line: None) as supervisor:
        with pytest.raises(StartFailed, match=r"(?s)exited with code 3.*cannot listen on 1.2.3.4"):
            await supervisor.start(child)
        assert supervisor.children == []


async def test_a_hung_service_is_killed_and_restarted(tmp_path: Path) -> None:
    said: list[str] = []
    async with Supervisor(said.append, liveness_every=0.2, liveness_failures=3) as supervisor:
        child = server_child(tmp_path)
        await supervisor.start(child)
        assert child.process is not None
        hung = child.process.pid
        # Still alive, answering nothing: what a deadlocked service looks like from outside.
        os.kill(hung, signal.SIGSTOP)
        restarted = replaced(supervisor, child, hung)
        await eventually(restarted, timeout=20, what="restart of the hung service")
        assert any("stopped answering its health checks" in line for line in said)
