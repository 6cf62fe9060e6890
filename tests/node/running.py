"""`strata up` as a real process on free ports, for the node and browser tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.node.config import DEFAULT_PORTS, NodeConfig, save
from tests.services import free_port

START_TIMEOUT = 180.0


@dataclass
class Node:
    """A running `strata up --demo`: its data directory, configuration and console output."""

    data_dir: Path
    config: NodeConfig
    process: subprocess.Popen[str]
    output: list[str]

    def url(self, service: str) -> str:
        return self.config.url(service)

    def pids(self, service: str) -> list[int]:
        """The processes running `service` of this node."""
        marker = str(self.data_dir / service)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in argv and service.encode() in argv:
                found.append(int(entry.name))
        return found

    def children(self) -> list[int]:
        """Every process still running one of this node's services."""
        return [pid for service in self.config.services for pid in self.pids(service)]


def xrpc(base: str, nsid: str, **params: Any) -> Any:
    """A query to a service of the node (a list parameter repeats in the query string)."""
    query = urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(f"{base}/xrpc/{nsid}?{query}", timeout=10) as response:
        return json.load(response)


def _read(stream: object, into: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line.rstrip("\n"))


@contextlib.contextmanager
def running_node(root: Path, demo: bool = True) -> Iterator[Node]:
    """`strata up [--demo]` on free ports in `root`; stopped with SIGINT (Ctrl-C) at the end."""
    config = NodeConfig(ports={name: free_port() for name in DEFAULT_PORTS})
    save(root, config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strata",
            "up",
            "--data-dir",
            str(root),
            *(["--demo"] if demo else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output: list[str] = []
    threading.Thread(target=_read, args=(process.stdout, output), daemon=True).start()
    node = Node(root, config, process, output)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any(line.startswith("ready:") for line in output):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("strata up did not become ready:\n" + "\n".join(output))
            time.sleep(0.2)
        yield node
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for pid in node.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
