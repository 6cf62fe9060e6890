"""PDS benchmark: `strata pds` next to the official TypeScript PDS, measured in the same run.

Both run as their own processes on 127.0.0.1, each with its own `strata plc` directory, and
are driven by the same aiohttp client over plain HTTP (XRPC):

- createRecord throughput and p50/p99 latency, one writer and eight concurrent writers (eight
  accounts), after a warm-up;
- getRecord reads per second with eight concurrent readers;
- getRepo export speed (MB/s) of an account filled with applyWrites batches of 200;
- firehose delivery lag: from a createRecord response to its #commit frame on subscribeRepos;
- memory per idle account: the PDS process's RSS before, halfway and after creating N accounts,
  each time after a pause (and, in the Node process, a garbage collection requested through its
  inspector, which SIGUSR1 opens on 127.0.0.1:9229).

Run: `python bench/pds.py [--scale S] [--only strata]`. The official PDS (@atproto/pds 0.5.35)
needs `bash bench/peers/setup.sh`; without it its cells print n/a.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cbrrr

from harness import percentile, rss_kib, strata_service

PEERS = Path(__file__).resolve().parent / "peers"
COLLECTION = "app.bsky.feed.post"
PASSWORD = "bench-password-1"
TIMEOUT = aiohttp.ClientTimeout(total=60)
WRITERS = 8
Collector = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]
READERS = 8


# --- processes -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def strata_pds(work: Path) -> AsyncIterator[tuple[str, int, Collector | None]]:
    """A `strata pds` process with its own `strata plc` directory; yields (URL, PDS pid, None):
    the Python process offers no way to ask for a collection, and needs none for the measure
    (reference counting frees what is dropped at once)."""
    async with (
        strata_service("plc", work / "plc") as (plc_url, _),
        strata_service(
            "pds",
            work / "pds",
            "--hostname",
            "localhost",
            "--plc-url",
            plc_url,
            "--dev",
            "--no-rate-limits",  # as the peer runs (PDS_RATE_LIMITS_ENABLED=false)
        ) as (url, proc),
    ):
        yield url, proc.pid, None


@contextlib.asynccontextmanager
async def peer_pds(work: Path) -> AsyncIterator[tuple[str, int, Collector | None]]:
    """The official PDS with its own `strata plc` directory; yields (URL, PDS pid, a function
    that runs V8's garbage collector in it)."""
    sys.path.insert(0, str(PEERS))
    from official_pds import official_pds

    async with (
        strata_service("plc", work / "plc") as (plc_url, _),
        official_pds(plc_url, work / "pds") as peer,
    ):
        yield peer.url, peer.pid, node_gc


def peer_installed() -> tuple[bool, str]:
    try:
        sys.path.insert(0, str(PEERS))
        from official_pds import NOT_INSTALLED, is_installed
    except Exception as exc:  # the peer module itself is missing or broken
        return False, f"bench/peers/official_pds.py cannot be imported: {exc}"
    return (True, "") if is_installed() else (False, NOT_INSTALLED)


async def node_gc(http: aiohttp.ClientSession, pid: int) -> bool:
    """A full garbage collection in the Node process `pid`, through its inspector.

    SIGUSR1 makes Node open its inspector on 127.0.0.1:9229; the target is checked to be that
    very process (another Node may hold the port) before HeapProfiler.collectGarbage. Returns
    False when that process's inspector cannot be reached (the measure then goes on without).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    timeout = aiohttp.ClientTimeout(total=2)
    for _ in range(30):
        try:
            async with http.get("http://127.0.0.1:9229/json/list", timeout=timeout) as resp:
                targets = await resp.json(content_type=None)
            break
        except (aiohttp.ClientError, TimeoutError, ValueError):
            await asyncio.sleep(0.1)
    else:
        return False
    for target in targets:
        ws_url = target.get("webSocketDebuggerUrl")
        if not ws_url:
            continue
        try:
            async with http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:

                async def call(n: int, method: str, **params: Any) -> Any:
                    await ws.send_json({"id": n, "method": method, "params": params})
                    for _ in range(100):
                        reply = await asyncio.wait_for(ws.receive_json(), 10)
                        if reply.get("id") == n:
                            return reply.get("result")
                    raise TimeoutError(f"no answer to {method}")

                answer = await call(
                    1, "Runtime.evaluate", expression="process.pid", returnByValue=True
                )
                if answer.get("result", {}).get("value") != pid:
                    continue
                await call(2, "HeapProfiler.collectGarbage")
                await call(3, "HeapProfiler.collectGarbage")
                return True
        except (aiohttp.ClientError, TimeoutError, ValueError, AttributeError):
            continue
    return False


# --- the load client -------------------------------------------------------------------------


class XrpcError(Exception):
    pass


@dataclass
class Account:
    did: str
    jwt: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.jwt}"}


@dataclass
class Client:
    """One PDS, one HTTP session; keeps the first failures it sees, verbatim."""

    url: str
    http: aiohttp.ClientSession
    errors: list[str] = field(default_factory=list)
    failures: int = 0

    def _fail(self, what: str, detail: str) -> XrpcError:
        self.failures += 1
        if len(self.errors) < 10:
            self.errors.append(f"{what}: {detail}")
        return XrpcError(f"{what}: {detail}")

    async def post(self, nsid: str, body: dict[str, Any], auth: Account | None = None) -> Any:
        headers = auth.auth if auth else {}
        try:
            async with self.http.post(
                f"{self.url}/xrpc/{nsid}", json=body, headers=headers, timeout=TIMEOUT
            ) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise self._fail(
                        f"POST {nsid} {_short(body)}", f"HTTP {resp.status} {text[:400]}"
                    )
                return await resp.json(content_type=None) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._fail(f"POST {nsid} {_short(body)}", repr(exc)) from exc

    async def get(self, nsid: str, params: dict[str, str]) -> bytes:
        try:
            async with self.http.get(
                f"{self.url}/xrpc/{nsid}", params=params, timeout=TIMEOUT
            ) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise self._fail(f"GET {nsid} {params}", f"HTTP {resp.status} {data[:400]!r}")
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._fail(f"GET {nsid} {params}", repr(exc)) from exc

    async def create_account(self) -> Account:
        name = f"b{secrets.token_hex(5)}"
        out = await self.post(
            "com.atproto.server.createAccount",
            {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD},
        )
        return Account(out["did"], out["accessJwt"])

    async def create_record(self, account: Account, i: int) -> tuple[str, str]:
        """Create a post; returns (rkey, commit rev)."""
        out = await self.post(
            "com.atproto.repo.createRecord",
            {"repo": account.did, "collection": COLLECTION, "record": post(i)},
            account,
        )
        return out["uri"].rsplit("/", 1)[1], out["commit"]["rev"]


def _short(body: dict[str, Any]) -> str:
    text = repr({k: v for k, v in body.items() if k != "writes"})
    if "writes" in body:
        text += f" + {len(body['writes'])} writes"
    return text[:300]


def post(i: int) -> dict[str, Any]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return {"$type": COLLECTION, "text": f"benchmark post number {i}", "createdAt": stamp}


async def bounded(
    count: int, concurrency: int, seconds: float, job: Callable[[int], Awaitable[None]]
) -> tuple[int, float]:
    """Run job(0..count-1) with `concurrency` workers, stopping at `seconds`; (done, elapsed)."""
    next_index = 0
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal next_index, done
        while next_index < count and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            with contextlib.suppress(XrpcError):
                await job(i)
                done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - start


# --- the measures ----------------------------------------------------------------------------


@dataclass
class Sizes:
    scale: float
    one_writer: int = 300
    per_writer: int = 150
    reads: int = 4000
    export_records: int = 10_000
    lag_records: int = 100
    idle_accounts: int = 500

    def __post_init__(self) -> None:
        for name in ("one_writer", "per_writer", "reads", "export_records", "idle_accounts"):
            setattr(self, name, max(20, round(getattr(self, name) * self.scale)))
        self.lag_records = max(20, round(self.lag_records * min(self.scale, 1.0)))


async def write_load(
    client: Client, writers: list[Account], per_writer: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    rkeys: list[tuple[str, str]] = []
    deadline = time.perf_counter() + seconds

    async def writer(account: Account) -> None:
        for i in range(per_writer):
            if time.perf_counter() > deadline:
                return
            start = time.perf_counter()
            with contextlib.suppress(XrpcError):
                rkey, _ = await client.create_record(account, i)
                latencies.append(time.perf_counter() - start)
                rkeys.append((account.did, rkey))

    start = time.perf_counter()
    await asyncio.gather(*(writer(a) for a in writers))
    elapsed = time.perf_counter() - start
    if not latencies:
        raise RuntimeError("no createRecord succeeded")
    return {
        "rate": len(latencies) / elapsed,
        "p50": percentile(sorted(latencies), 0.50) * 1000,
        "p99": percentile(sorted(latencies), 0.99) * 1000,
        "n": len(latencies),
        "attempted": per_writer * len(writers),
        "rkeys": rkeys,
    }


async def read_load(client: Client, rkeys: list[tuple[str, str]], count: int) -> dict[str, Any]:
    async def job(i: int) -> None:
        did, rkey = rkeys[(i * 7919) % len(rkeys)]
        await client.get(
            "com.atproto.repo.getRecord", {"repo": did, "collection": COLLECTION, "rkey": rkey}
        )

    done, elapsed = await bounded(count, READERS, 60.0, job)
    if not done:
        raise RuntimeError("no getRecord succeeded")
    return {"rate": done / elapsed, "n": done, "attempted": count}


async def export_load(client: Client, account: Account, records: int) -> dict[str, Any]:
    batches = [(start, min(start + 200, records)) for start in range(0, records, 200)]
    fill_start = time.perf_counter()
    for lo, hi in batches:
        if time.perf_counter() - fill_start > 120:
            raise RuntimeError(f"filling the repository took over 120 s ({lo} records written)")
        writes = [
            {
                "$type": "com.atproto.repo.applyWrites#create",
                "collection": COLLECTION,
                "value": post(i),
            }
            for i in range(lo, hi)
        ]
        await client.post(
            "com.atproto.repo.applyWrites", {"repo": account.did, "writes": writes}, account
        )
    fill = time.perf_counter() - fill_start
    times = []
    size = 0
    for _ in range(5):
        start = time.perf_counter()
        car = await client.get("com.atproto.sync.getRepo", {"did": account.did})
        times.append(time.perf_counter() - start)
        size = len(car)
    return {
        "best": size / min(times) / 1e6,
        "median": size / statistics.median(times) / 1e6,
        "size": size,
        "records": records,
        "fill_rate": records / fill,
        "best_ms": min(times) * 1000,
    }


async def firehose_lag(client: Client, account: Account, count: int) -> dict[str, Any]:
    ws_url = client.url.replace("http://", "ws://", 1) + "/xrpc/com.atproto.sync.subscribeRepos"
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}
    frames = 0

    async with client.http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:

        async def reader() -> None:
            nonlocal frames
            async for msg in ws:
                now = time.perf_counter()
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                frames += 1
                header, body = cbrrr.decode_multi_dag_cbor_in_violation_of_the_spec(msg.data)
                if header.get("t") != "#commit" or body.get("repo") != account.did:
                    continue
                rev = body.get("rev")
                arrived.setdefault(rev, now)
                if rev in waiting:
                    waiting[rev].set()

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.5)  # let the subscription reach the live tail
        lags: list[float] = []
        missed = 0
        try:
            deadline = time.perf_counter() + 60
            warm_up = 5  # the first commits after subscribing are not counted
            for i in range(count + warm_up):
                if time.perf_counter() > deadline or task.done():
                    break
                try:
                    _, rev = await client.create_record(account, i)
                except XrpcError:
                    continue
                answered = time.perf_counter()
                event = waiting.setdefault(rev, asyncio.Event())
                if rev in arrived:
                    event.set()
                try:
                    await asyncio.wait_for(event.wait(), 5.0)
                except TimeoutError:
                    missed += 1
                    continue
                if i >= warm_up:
                    lags.append((arrived[rev] - answered) * 1000)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if not lags:
        raise RuntimeError(f"no #commit frame matched ({frames} frames, {missed} missed)")
    return {
        "p50": percentile(sorted(lags), 0.50),
        "p99": percentile(sorted(lags), 0.99),
        "n": len(lags),
        "missed": missed,
        "early": sum(lag < 0 for lag in lags),
    }


async def idle_memory(
    client: Client, pid: int, accounts: int, collect: Collector | None
) -> dict[str, Any]:
    """RSS growth per account over `accounts` new ones, sampled halfway too.

    A warm-up burst of creations comes first, so that one-time costs of the first burst (the
    worker threads that hash passwords and their allocator arenas) are in the baseline. Each
    sample is taken after a pause, a garbage collection where the runtime has one to ask for
    (`collect`), and is the lowest RSS over a second. The figure over all accounts includes
    whatever per-account state a PDS keeps in bounded caches; the second half's slope is closer
    to the steady cost of one more idle account.
    """
    concurrency = 4
    collected: list[bool] = []

    async def job(_: int) -> None:
        await client.create_account()

    async def sample() -> int:
        await asyncio.sleep(2)
        if collect is not None:
            for _ in range(2):
                collected.append(await collect(client.http, pid))
                await asyncio.sleep(0.5)
        lowest = rss_kib(pid)
        for _ in range(10):
            await asyncio.sleep(0.1)
            lowest = min(lowest, rss_kib(pid))
        return lowest

    if collect is not None:
        await collect(client.http, pid)  # what it costs to be able to collect is in the baseline
    await bounded(4 * concurrency, concurrency, 60.0, job)
    before = await sample()
    first, elapsed1 = await bounded(accounts // 2, concurrency, 60.0, job)
    half = await sample()
    second, elapsed2 = await bounded(accounts - accounts // 2, concurrency, 60.0, job)
    after = await sample()
    created = first + second
    if not first or not second:
        raise RuntimeError(f"createAccount failed ({created} of {accounts} made)")
    return {
        "per_account": (after - before) / created,
        "marginal": (after - half) / second,
        "before": before,
        "half": half,
        "after": after,
        "created": created,
        "rate": created / (elapsed1 + elapsed2),
        "gc": "n/a" if collect is None else f"{sum(collected)} of {len(collected)}",
    }


async def measure(
    name: str, url: str, pid: int, collect: Collector | None, sizes: Sizes
) -> dict[str, Any]:
    """Every measure against one running PDS; a failed measure is kept as its error."""
    results: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as http:
        client = Client(url, http)

        async def step(key: str, label: str, fn: Callable[[], Awaitable[Any]]) -> Any:
            print(f"  {name}: {label} ...", flush=True)
            try:
                results[key] = await fn()
            except Exception as exc:
                results[key] = None
                print(f"  {name}: {label} failed: {exc!r}", flush=True)
            return results[key]

        start = time.perf_counter()
        results["load_before"] = os.getloadavg()[0]
        writers = await asyncio.gather(*(client.create_account() for _ in range(WRITERS)))
        exporter = await client.create_account()
        # Warm-up: every code path once or more, before anything is timed.
        warm = await write_load(client, list(writers), 10, 60)
        await read_load(client, warm["rkeys"], 100)
        await client.get("com.atproto.sync.getRepo", {"did": writers[0].did})

        await step(
            "memory",
            "memory per idle account",
            lambda: idle_memory(client, pid, sizes.idle_accounts, collect),
        )
        one = await step(
            "write1", "1 writer", lambda: write_load(client, writers[:1], sizes.one_writer, 90)
        )
        many = await step(
            "write8",
            f"{WRITERS} writers",
            lambda: write_load(client, list(writers), sizes.per_writer, 90),
        )
        rkeys = warm["rkeys"] + (one["rkeys"] if one else []) + (many["rkeys"] if many else [])
        await step("read", f"{READERS} readers", lambda: read_load(client, rkeys, sizes.reads))
        await step("export", "export", lambda: export_load(client, exporter, sizes.export_records))
        await step(
            "lag", "firehose lag", lambda: firehose_lag(client, writers[0], sizes.lag_records)
        )
        results["seconds"] = time.perf_counter() - start
        results["load_after"] = os.getloadavg()[0]
        results["errors"] = client.errors
        results["failures"] = client.failures
    return results


# --- the table -------------------------------------------------------------------------------


def run_side(name: str, pds: Callable[[Path], Any], work: Path, sizes: Sizes) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with pds(work) as (url, pid, collect):
            return await measure(name, url, pid, collect, sizes)

    return asyncio.run(go())


def table(
    ours: dict[str, Any], theirs: dict[str, Any] | None, sizes: Sizes
) -> list[tuple[str, ...]]:
    def get(side: dict[str, Any] | None, key: str, sub: str) -> float | None:
        if side is None or side.get(key) is None:
            return None
        return float(side[key][sub])

    def cell(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else fmt.format(value)

    def ratio(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or a <= 0 or b <= 0:
            return None  # a figure at or below zero (memory noise) has no meaningful ratio
        return a / b

    def target_ratio(r: float | None, want: float) -> str:
        if r is None:
            return f"ratio >= {want:g}: n/a"
        return f"ratio >= {want:g}: {'met' if r >= want else 'NOT met'}"

    rows: list[tuple[str, ...]] = []

    def row(
        label: str, key: str, sub: str, fmt: str, higher_better: bool, target: str = ""
    ) -> float | None:
        a, b = get(ours, key, sub), get(theirs, key, sub)
        r = ratio(a, b) if higher_better else ratio(b, a)
        rows.append((label, cell(a, fmt), cell(b, fmt), cell(r, "{:.2f}"), target))
        return r

    for key, label, writers in (
        ("write1", "1 writer", 1),
        ("write8", f"{WRITERS} writers", WRITERS),
    ):
        n = sizes.one_writer if writers == 1 else sizes.per_writer
        r = row(f"createRecord/s, {label} ({n} each)", key, "rate", "{:,.0f}/s", True)
        rows[-1] = (*rows[-1][:4], target_ratio(r, 3))
        row(f"createRecord p50 latency, {label}", key, "p50", "{:.1f} ms", False)
        p99 = get(ours, key, "p99")
        target = ""
        if writers == WRITERS:
            target = "Strata p99 < 50 ms: " + (
                "n/a" if p99 is None else ("met" if p99 < 50 else "NOT met")
            )
        row(f"createRecord p99 latency, {label}", key, "p99", "{:.1f} ms", False, target)
    r = row(f"getRecord/s, {READERS} readers", "read", "rate", "{:,.0f}/s", True)
    rows[-1] = (*rows[-1][:4], target_ratio(r, 3))

    size = get(ours, "export", "size")
    peer_size = get(theirs, "export", "size")
    sizes_text = "/".join(f"{s / 1e6:.2f}" for s in (size, peer_size) if s is not None)
    r = row(
        f"getRepo export MB/s, {sizes.export_records:,} records ({sizes_text} MB CAR), best of 5",
        "export",
        "best",
        "{:.1f} MB/s",
        True,
    )
    rows[-1] = (*rows[-1][:4], target_ratio(r, 5))
    row("getRepo export MB/s, median of 5", "export", "median", "{:.1f} MB/s", True)
    row("applyWrites fill, records/s (batches of 200)", "export", "fill_rate", "{:,.0f}/s", True)
    row("firehose lag p50 (createRecord answer -> #commit frame)", "lag", "p50", "{:.2f} ms", False)
    row("firehose lag p99", "lag", "p99", "{:.2f} ms", False)
    for sub, label in (
        ("per_account", f"RSS growth per idle account, over all {sizes.idle_accounts} new ones"),
        ("marginal", f"RSS growth per idle account, second {sizes.idle_accounts // 2} only"),
    ):
        per = get(ours, "memory", sub)
        met = "n/a" if per is None else ("met" if per < 50 else "NOT met")
        row(label, "memory", sub, "{:.1f} KiB", False, f"Strata < 50 KiB: {met}")
    row("createAccount/s (4 concurrent)", "memory", "rate", "{:,.1f}/s", True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count")
    parser.add_argument("--only", choices=["strata"], help="skip the official PDS")
    args = parser.parse_args()
    sizes = Sizes(args.scale)
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="strata-bench-pds-") as tmp:
        work = Path(tmp)
        print("measuring strata pds ...", flush=True)
        ours = run_side("strata", strata_pds, work / "strata", sizes)
        theirs = None
        if args.only != "strata":
            installed, why = peer_installed()
            if not installed:
                print(f"(official PDS not measured: {why})")
            else:
                print("measuring the official PDS ...", flush=True)
                try:
                    theirs = run_side("official", peer_pds, work / "official", sizes)
                except Exception as exc:
                    print(f"(official PDS not measured: {exc})")

    rows = table(ours, theirs, sizes)
    header = ("measure", "Strata", "official PDS 0.5.35", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print("(ratio > 1: Strata better; throughput ours/theirs, latency and memory theirs/ours)")

    for name, side in (("strata", ours), ("official PDS", theirs)):
        if side is None:
            continue
        mem, lag = side.get("memory"), side.get("lag")
        notes = [
            f"{side['seconds']:.0f} s of load (machine load average "
            f"{side['load_before']:.1f} -> {side['load_after']:.1f})"
        ]
        if mem:
            notes.append(
                f"RSS {mem['before'] / 1024:.0f} -> {mem['half'] / 1024:.0f} -> "
                f"{mem['after'] / 1024:.0f} MiB "
                f"over {mem['created']} accounts (forced collections: {mem['gc']})"
            )
        if lag:
            notes.append(
                f"lag over {lag['n']} commits, {lag['missed']} frames missed, "
                f"{lag['early']} frames before the HTTP answer"
            )
        for key in ("write1", "write8", "read"):
            if side.get(key) and side[key]["n"] < side[key]["attempted"]:
                notes.append(f"{key}: {side[key]['n']} of {side[key]['attempted']} done")
        print(f"{name}: " + "; ".join(notes))
        if side["failures"]:
            print(f"{name}: {side['failures']} failed requests; first ones:")
            for err in side["errors"]:
                print(f"  {err}")
    print(f"total {time.perf_counter() - began:.0f} s (scale {args.scale:g})")


if __name__ == "__main__":
    main()
