"""Identity benchmark: the PLC directory and the resolver, next to their peers in the same run.

- Operations accepted per second by `strata plc` (a real process, over HTTP, durable writes) on
  SQLite, on PostgreSQL with one worker and with two (`--workers 2`), and by the official
  `@did-plc/server` on PostgreSQL, with the same load client. Each PostgreSQL is a throwaway
  cluster with the server's default settings (the official server gets one of its own).
- Cached resolutions per second in-process: Strata's `IdentityResolver` and the official Python
  SDK's `AsyncIdResolver` with its in-memory cache.
- Failover: the primary directory stops answering (SIGSTOP); time until uncached DIDs resolve
  from the mirror, and failed resolutions of already-cached ones. The SDK, with one directory
  URL, is shown for comparison.

Run: `python bench/identity.py [--ops N] [--concurrency C ...] [--no-node]`. The official server
needs `bash bench/peers/setup.sh` and PostgreSQL; without them its cells print n/a, and without
PostgreSQL so do Strata's PostgreSQL rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from strata.core.crypto import K256Keypair
from strata.core.plc import did_for_genesis, sign_operation
from strata.identity import IdentityResolver
from strata.identity.dns import DnsTxtResolver

Op = tuple[str, dict[str, Any]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def strata_plc(
    data_dir: Path, *mirror_of: str, options: tuple[str, ...] = ()
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`strata plc` as its own process, with more command-line `options`; yields (URL,
    process)."""
    port = free_port()
    args = [sys.executable, "-m", "strata", "plc", "--port", str(port), "--data-dir", str(data_dir)]
    for url in mirror_of:
        args += ["--mirror-of", url]
    args += options
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(_wait_healthy(url))
        yield url, proc
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)


async def _wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(f"{url}/_health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


def make_ops(n: int) -> list[Op]:
    """Signed genesis operations for `n` fresh DIDs (made before timing starts)."""
    ops = []
    for i in range(n):
        key = K256Keypair.generate()
        op = sign_operation(
            {
                "type": "plc_operation",
                "rotationKeys": [key.did()],
                "verificationMethods": {"atproto": key.did()},
                "alsoKnownAs": [f"at://user{i}.test"],
                "services": {
                    "atproto_pds": {
                        "type": "AtprotoPersonalDataServer",
                        "endpoint": "http://127.0.0.1:2583",
                    }
                },
                "prev": None,
            },
            key,
        )
        ops.append((did_for_genesis(op), op))
    return ops


async def submit_all(url: str, ops: list[Op], concurrency: int) -> tuple[float, int]:
    """POST every operation with `concurrency` clients; return (accepted per second, refused)."""
    queue = list(reversed(ops))
    failures = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal failures
        while queue:
            did, op = queue.pop()
            async with http.post(f"{url}/{did}", json=op) as resp:
                await resp.read()
                failures += resp.status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return (len(ops) - failures) / elapsed, failures


async def new_database(cluster: str) -> str:
    """A fresh database in the cluster at URL `cluster`; its URL."""
    import asyncpg

    name = f"plc_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(cluster)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return f"{cluster.rsplit('/', 1)[0]}/{name}"


def strata_rate(ops: list[Op], concurrency: int, data_dir: Path, options: tuple[str, ...]) -> float:
    """Operations per second accepted by `strata plc` started with `options`."""
    with strata_plc(data_dir, options=options) as (url, _):
        rate, refused = asyncio.run(submit_all(url, ops, concurrency))
    if refused:
        raise RuntimeError(f"strata plc {' '.join(options)} refused {refused} valid operations")
    return rate


def bench_ops(
    n: int, concurrency: int, node: bool, work: Path, cluster: str | None
) -> tuple[float, float | None, float | None, tuple[float, int] | None]:
    """Operations accepted per second: Strata on SQLite, on Postgres with one and two workers
    (None without a cluster), and the official directory (None when not measured)."""
    ops = make_ops(n)
    ours = strata_rate(ops, concurrency, work / "sqlite", ())
    postgres: list[float | None] = [None, None]
    if cluster is not None:
        for index, workers in enumerate((1, 2)):
            database = asyncio.run(new_database(cluster))
            options = ("--database-url", database, "--workers", str(workers))
            postgres[index] = strata_rate(ops, concurrency, work / f"postgres{workers}", options)
    theirs = None
    if node:
        try:
            sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
            from plc_server import official_plc

            with official_plc() as peer_url:
                theirs = asyncio.run(submit_all(peer_url, ops, concurrency))
        except RuntimeError as exc:
            print(f"(official PLC directory not measured: {exc})")
    return ours, postgres[0], postgres[1], theirs


async def cached_rates(url: str, dids: list[str], seconds: float = 2.0) -> tuple[float, float]:
    from atproto import AsyncDidInMemoryCache, AsyncIdResolver

    async with aiohttp.ClientSession() as session:
        resolver = IdentityResolver(session, [url], dns=DnsTxtResolver([("127.0.0.1", 9)]))
        for did in dids:
            await resolver.resolve_did(did)
        ours = await _rate(lambda did: resolver.resolve_did(did), dids, seconds)
    sdk = AsyncIdResolver(plc_url=url, cache=AsyncDidInMemoryCache())
    for did in dids:
        await sdk.did.resolve(did)
    theirs = await _rate(lambda did: sdk.did.resolve(did), dids, seconds)
    return ours, theirs


async def _rate(resolve: Any, dids: list[str], seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for did in dids:
            await resolve(did)
        n += len(dids)
    return n / elapsed


async def failover(
    primary: str,
    mirror: str,
    cached: list[str],
    uncached: list[str],
    primary_proc: subprocess.Popen[bytes],
) -> dict[str, Any]:
    from atproto import AsyncIdResolver

    async with aiohttp.ClientSession() as session:
        resolver = IdentityResolver(
            session,
            [primary, mirror],
            dns=DnsTxtResolver([("127.0.0.1", 9)]),
            fresh_for=0.1,
            timeout=3.0,
        )
        for did in cached:
            await resolver.resolve_did(did)
        await asyncio.sleep(0.2)  # every cached entry is now past freshness: refreshes will fail
        os.kill(primary_proc.pid, signal.SIGSTOP)
        try:
            failed_cached = 0
            for _ in range(3):
                for did in cached:
                    try:
                        await resolver.resolve_did(did)
                    except Exception:
                        failed_cached += 1
            latencies = []
            failed_uncached = 0
            for did in uncached:
                start = time.perf_counter()
                try:
                    await resolver.resolve_did(did)
                    latencies.append(time.perf_counter() - start)
                except Exception:
                    failed_uncached += 1
            sdk = AsyncIdResolver(plc_url=primary, timeout=3)
            start = time.perf_counter()
            try:
                sdk_ok = await sdk.did.resolve(uncached[0]) is not None
            except Exception:
                sdk_ok = False
            sdk_time = time.perf_counter() - start
        finally:
            os.kill(primary_proc.pid, signal.SIGCONT)
    return {
        "first": latencies[0] if latencies else float("nan"),
        "worst": max(latencies) if latencies else float("nan"),
        "failed_cached": failed_cached,
        "cached_lookups": 3 * len(cached),
        "failed_uncached": failed_uncached,
        "sdk_ok": sdk_ok,
        "sdk_time": sdk_time,
    }


async def wait_mirrored(mirror: str, did: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            async with http.get(f"{mirror}/{did}") as resp:
                if resp.status == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the mirror did not catch up")


def main() -> None:
    # The resolver's own warnings (a breaker opening) are expected here; keep the table clean.
    logging.getLogger("strata").addHandler(logging.NullHandler())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--no-node", action="store_true", help="skip the official directory")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from plc_server import throwaway_postgres

    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="strata-bench-")))
        cluster: str | None = None
        try:
            cluster = stack.enter_context(throwaway_postgres())
        except RuntimeError as exc:
            print(f"(strata plc on PostgreSQL not measured: {exc})")
        writes = []
        for clients in args.concurrency:
            print(f"submitting {args.ops} operations, {clients} concurrent clients ...", flush=True)
            writes.append(
                (
                    clients,
                    *bench_ops(args.ops, clients, not args.no_node, work / str(clients), cluster),
                )
            )

        print("resolution and failover ...", flush=True)
        ops = make_ops(400)
        with (
            strata_plc(work / "primary") as (primary, proc),
            strata_plc(work / "mirror", primary) as (mirror, _),
        ):
            asyncio.run(submit_all(primary, ops, 8))
            asyncio.run(wait_mirrored(mirror, ops[-1][0]))
            dids = [did for did, _ in ops]
            ours_res, sdk_res = asyncio.run(cached_rates(primary, dids[:200]))
            fo = asyncio.run(failover(primary, mirror, dids[:200], dids[200:], proc))

    def ratio(a: float, b: float | None) -> str:
        return f"{a / b:.2f}" if b else "n/a"

    rows = []
    for clients, ours_ops, postgres1, postgres2, their_ops in writes:
        peer = (
            f"{their_ops[0]:,.0f}/s @did-plc/server 0.0.1 + PostgreSQL "
            f"({their_ops[1]} of {args.ops} refused)"
            if their_ops
            else "n/a"
        )
        theirs = their_ops[0] if their_ops else None
        rows.append(
            (
                f"PLC operations accepted/s, {clients} clients (target >= 1,000)",
                f"{ours_ops:,.0f}/s",
                peer,
                ratio(ours_ops, theirs),
            )
        )
        for workers, rate in ((1, postgres1), (2, postgres2)):
            rows.append(
                (
                    f"  the same, strata plc on PostgreSQL, {workers} worker{'s' * (workers > 1)}",
                    f"{rate:,.0f}/s ({ratio(rate, ours_ops)} of SQLite)" if rate else "n/a",
                    f"{theirs:,.0f}/s, the same peer" if theirs else "n/a",
                    ratio(rate, theirs) if rate else "n/a",
                )
            )
    rows += [
        (
            "Cached DID resolutions/s, in-process",
            f"{ours_res:,.0f}/s",
            f"{sdk_res:,.0f}/s atproto SDK AsyncIdResolver + cache",
            ratio(ours_res, sdk_res),
        ),
        (
            "Failover: first uncached resolution with the primary stopped (target < 1 s)",
            f"{fo['first'] * 1000:.0f} ms (worst {fo['worst'] * 1000:.0f} ms, "
            f"{fo['failed_uncached']} failed)",
            f"SDK, one directory: {'ok' if fo['sdk_ok'] else 'failed'} after "
            f"{fo['sdk_time'] * 1000:.0f} ms",
            ratio(fo["sdk_time"], fo["first"]) if not fo["sdk_ok"] else "n/a",
        ),
        (
            "Failed resolutions of cached identities during the outage (target 0)",
            f"{fo['failed_cached']} of {fo['cached_lookups']}",
            "",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure':<{width}} | strata | peer | ratio")
    for name, ours, peer, r in rows:
        print(f"{name:<{width}} | {ours} | {peer} | {r}")


if __name__ == "__main__":
    main()
