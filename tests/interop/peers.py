"""The official TypeScript stack beside Strata, for interoperability tests.

`official_network(tmp_path)` starts a Strata PLC directory in the test's event loop and the
official PDS (`@atproto/pds`, a Node 22 process from bench/peers/) registering its DIDs there.
`run_node(script, *args)` runs a Node 22 script (e.g. api_client.mjs) with a time bound.

When the peers are not installed the tests are skipped, except under CI=true where that is a
failure: CI must run `bash bench/peers/setup.sh` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.services import RunningPlc, free_port, running_plc

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = REPO / "bench" / "peers"
HERE = Path(__file__).resolve().parent


def _load_official_pds() -> ModuleType:
    name = "strata_peers_official_pds"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PEERS_DIR / "official_pds.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# bench/peers/official_pds.py (not an installed package: loaded from its file, untyped here).
official_pds_module: Any = _load_official_pds()


def require_peers() -> None:
    """Skip the calling test if the official peers are not installed (fail under CI=true)."""
    if official_pds_module.is_installed():
        return
    message = official_pds_module.NOT_INSTALLED
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


@dataclasses.dataclass(frozen=True)
class OfficialNetwork:
    """A Strata PLC directory and the official PDS using it."""

    plc: RunningPlc
    pds: Any  # official_pds.OfficialPds: .url .port .admin_password .pid .log_path .public_url

    @property
    def plc_url(self) -> str:
        return self.plc.url

    @property
    def pds_url(self) -> str:
        url: str = self.pds.url
        return url


@contextlib.asynccontextmanager
async def official_network(tmp_path: Path, **pds_options: Any) -> AsyncIterator[OfficialNetwork]:
    """Strata's PLC directory (in-process) + the official PDS (subprocess), on 127.0.0.1.

    `pds_options` go to `official_pds()` (`port`, `stub_appview`...).
    Skips (or fails under CI=true) if the peers are not installed. State lives under
    `tmp_path/plc` and `tmp_path/official-pds` (the PDS's log is `official-pds/pds.log`).
    """
    require_peers()
    pds_options.setdefault("port", free_port())
    plc_dir = tmp_path / "plc"
    plc_dir.mkdir(parents=True, exist_ok=True)
    async with (
        running_plc(plc_dir) as plc,
        official_pds_module.official_pds(plc.url, tmp_path / "official-pds", **pds_options) as pds,
    ):
        yield OfficialNetwork(plc=plc, pds=pds)


@dataclasses.dataclass(frozen=True)
class NodeResult:
    returncode: int
    stdout: str
    stderr: str


async def _drain(stream: asyncio.StreamReader | None, into: bytearray) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        into += chunk


async def run_node(script: Path, *args: str, timeout: float = 45.0) -> NodeResult:
    """Runs `script` under the peers' Node 22 (working directory bench/peers). Kills it after
    `timeout` seconds and raises TimeoutError with the end of what it printed."""
    proc = await asyncio.create_subprocess_exec(
        str(official_pds_module.node_bin()),
        str(Path(script).resolve()),
        *args,
        cwd=PEERS_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = bytearray(), bytearray()
    readers = asyncio.gather(_drain(proc.stdout, out), _drain(proc.stderr, err))
    try:
        await asyncio.wait_for(proc.wait(), timeout)
        await asyncio.wait_for(readers, 5)
    except TimeoutError:
        raise TimeoutError(
            f"{script.name} did not finish within {timeout:.0f} s\n"
            f"stdout: {out.decode(errors='replace')[-2000:]}\n"
            f"stderr: {err.decode(errors='replace')[-2000:]}"
        ) from None
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(readers, 1)
    assert proc.returncode is not None
    return NodeResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
