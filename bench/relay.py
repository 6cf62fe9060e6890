"""Relay benchmark: `strata relay` ingest, fan-out lag, memory per account and replay speed.

1. Verified ingest on one core, in-process and without WebSockets: every frame recorded from the
   official PDS (`official-firehose.frames` in the corpus) goes through the relay's `Ingest`
   (signature, rev order, sync 1.1 inversion, sequencing, a group commit every 500 events), on
   SQLite and then on Postgres (a throwaway cluster, `tests/postgres.py`, initdb defaults). The
   DID documents come from a `strata plc` mirror of the recorded directory export, which this
   script serves as a paged `/export`; every DID is resolved once before timing (the 42
   `#identity` frames still make the relay look their DID up again, as it does in service).
   Peer: the `atproto` SDK parsing the same frames (frame, message model, CAR) in the same
   process, with no verification at all.
2. End-to-end lag: a real `strata relay` process follows a synthetic PDS (served by this script)
   that sends prebuilt signed `#commit` frames at 2,000/s; 100 consumers in another process
   count what the relay forwards. The relay keeps per-host order, so the k-th commit a consumer
   receives is the k-th the source sent: lag = arrival - when the source sent frame k. Measured
   with the relay on SQLite, then again with a fresh relay on Postgres (`--database-url`, the
   same cluster as in 1).
3. Memory: the relay's RSS before, halfway and after it has seen the first commit of each of N
   more accounts (100,000 x scale), spread over a few synthetic PDSes and sent as fast as it
   takes them. This runs before 2, on the same relay process.
4. Replay: one consumer subscribes with `cursor=0` and reads every event the relay stored (from
   its SQLite file, which the operating system has in its page cache by then).
5. Chained relays: a second `strata relay` process follows the first (`--upstream`), and the
   same number of consumers read the second one while the source sends the next batch of
   commits at the same rate: lag through two relays, beside the one-relay figure of 2.

Every connection is to 127.0.0.1 (the relay names loopback hosts `localhost`, which resolves to
127.0.0.1 here). The synthetic PDSes are trusted (`--trusted`), which lifts their event rates and
account caps as the reference relay does. The corpus is `--corpus DIR`, by default the folder
`corpus` beside $STRATA_CONFORMANCE_DIR.

Run: `python bench/relay.py [--scale S] [--sections 12345] [--json]` (`--scale 0.1` for a quick
run). Progress goes to stderr; the table, and with `--json` a JSON document after it, to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from harness import Firehose, metric_sum, metrics, note, percentile, rss_kib, strata_service
from strata.core.cbor import decode_pair
from strata.core.crypto import K256Keypair
from strata.core.frames import message_frame
from strata.core.plc import did_for_genesis, parse_operation, sign_operation
from strata.core.repo import CommitResult, Repository, Write
from strata.core.syntax import next_tid
from strata.identity import IdentityResolver
from strata.pds.sequencer import commit_body, iso_now
from strata.plc.app import DIRECTORY_KEY, create_plc_app
from strata.plc.directory import Directory
from strata.plc.store import PlcStore, parse_created_at
from strata.relay.events import RelayEvents
from strata.relay.ingest import REJECTED, Ingest
from strata.relay.service import FLUSH_AT
from strata.relay.store import RelayStore
from strata.serve import listening

if TYPE_CHECKING:
    from tests.postgres import PostgresCluster

COLLECTION = "app.bsky.feed.post"
RECORDED_PDS = "localhost:2583"
"""The PDS the corpus's DID documents name (the official one, as it was recorded)."""
LAG_RATE = 2000
LAG_SECONDS = 20.0
LAG_CONSUMERS = 100
LAG_ACCOUNTS = 200
MEMORY_ACCOUNTS = 100_000
MEMORY_HOSTS = 4
"""Synthetic PDSes the memory measure spreads its accounts over, so that the relay's lookups of
new DIDs overlap (it reads each host's stream in order)."""
BURST_INTERVAL = 0.005
INGEST_RUNS = 3


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settled_rss(pid: int) -> int:
    """The lowest RSS over a second, after a pause."""
    await asyncio.sleep(2.0)
    lowest = rss_kib(pid)
    for _ in range(10):
        await asyncio.sleep(0.1)
        lowest = min(lowest, rss_kib(pid))
    return lowest


@dataclass
class Sizes:
    scale: float
    lag_frames: int = 0
    memory_accounts: int = 0

    def __post_init__(self) -> None:
        self.lag_frames = max(1000, round(LAG_RATE * LAG_SECONDS * self.scale))
        self.memory_accounts = max(1000, round(MEMORY_ACCOUNTS * self.scale))


# --- the corpus --------------------------------------------------------------------------------


def default_corpus() -> Path | None:
    root = os.environ.get("STRATA_CONFORMANCE_DIR")
    return Path(root).parent / "corpus" if root else None


def readme_peers(corpus: Path) -> str | None:
    """The corpus README's paragraph of peer figures, as one line."""
    with contextlib.suppress(OSError):
        for paragraph in (corpus / "README.md").read_text().split("\n\n"):
            if paragraph.startswith("Peer figures"):
                return " ".join(paragraph.split())
    return None


def read_frames(path: Path) -> list[bytes]:
    """Every recorded frame: a 4-byte big-endian length, then the WebSocket message."""
    data = path.read_bytes()
    frames = []
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        frames.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return frames


def export_app(lines: list[dict[str, Any]]) -> web.Application:
    """A directory's `/export` in the paged-by-`createdAt` form (no `seq`), over fixed lines."""
    stamped = sorted(((parse_created_at(line["createdAt"]), line) for line in lines), key=_first)

    async def export(request: web.Request) -> web.Response:
        count = min(int(request.query.get("count", "1000")), 1000)
        after_ms = -1
        with contextlib.suppress(KeyError, ValueError):
            after_ms = parse_created_at(request.query["after"])
        page = [line for ms, line in stamped if ms > after_ms][:count]
        text = "\n".join(json.dumps(line, separators=(",", ":")) for line in page)
        return web.Response(text=text, content_type="application/jsonlines")

    app = web.Application()
    app.router.add_get("/export", export)
    return app


def _first(item: tuple[int, Any]) -> int:
    return item[0]


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    async with listening(app, "127.0.0.1", 0) as port:
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def plc_directory(
    data_dir: Path, mirror_of: tuple[str, ...] = ()
) -> AsyncIterator[tuple[str, Directory]]:
    """A `strata plc` directory (or a mirror of `mirror_of`) served in this process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = await PlcStore.open(None, data_dir / "plc.sqlite")
    app = create_plc_app(store, mirror_of)
    try:
        async with serving(app) as url:
            yield url, app[DIRECTORY_KEY]
    finally:
        await store.close()


# --- 1. verified ingest from recorded frames ---------------------------------------------------


def rejected_by_reason() -> Counter[str]:
    found: Counter[str] = Counter()
    for metric in REJECTED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                found[sample.labels["reason"]] += int(sample.value)
    return found


async def ingest_once(
    frames: list[bytes], resolver: IdentityResolver, database_url: str | None, path: Path
) -> dict[str, Any]:
    """One timed pass of every frame through a fresh relay store (in Postgres at
    `database_url`, else SQLite at `path`)."""
    store = await RelayStore.open(database_url, path)
    try:
        events = RelayEvents(store, 0)
        host = await store.add_host(RECORDED_PDS, True, "pds", 1_000_000, int(time.time() * 1000))
        host.trusted = True
        store.update_host(host)
        await events.commit()
        desynced: list[str] = []
        ingest = Ingest(store, events, resolver, {host.id: host}, True, desynced.append)

        async def flush() -> None:
            store.update_host(host)
            ingest.dirty_hosts.clear()
            await events.commit()

        before = rejected_by_reason()
        start = time.perf_counter()
        for frame in frames:
            await ingest.handle(host, frame)
            if events.pending >= FLUSH_AT:
                await flush()
        await flush()
        elapsed = time.perf_counter() - start
        rejected = rejected_by_reason() - before
        rows = await store.db.fetch("SELECT event_type, count(*) FROM relay_seq GROUP BY 1")
        emitted = Counter({row[0]: int(row[1]) for row in rows})
    finally:
        await store.close()
    return {
        "seconds": elapsed,
        "commits": emitted["#commit"],
        "emitted": dict(emitted),
        "rejected": dict(rejected),
        "desynced": len(desynced),
    }


def sdk_parse_once(frames: list[bytes]) -> tuple[float, int]:
    """The atproto SDK's parse of every frame (commit blocks read as a CAR); (seconds, commits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from atproto import CAR
        from atproto_firehose import parse_subscribe_repos_message
        from atproto_firehose.models import MessageFrame

    commits = 0
    start = time.perf_counter()
    for frame in frames:
        message = MessageFrame.from_bytes(frame)
        parsed = parse_subscribe_repos_message(message)  # type: ignore[arg-type]
        if message.type == "#commit":
            CAR.from_bytes(parsed.blocks)  # type: ignore[union-attr]
            commits += 1
    return time.perf_counter() - start, commits


async def measure_ingest(corpus: Path, work: Path, cluster: PostgresCluster) -> dict[str, Any]:
    frames = read_frames(corpus / "official-firehose.frames")
    lines = [json.loads(x) for x in (corpus / "official-plc-export.jsonl").read_text().splitlines()]
    dids = sorted({line["did"] for line in lines})
    types = Counter(decode_pair(f)[0].get("t") for f in frames)
    async with (
        serving(export_app(lines)) as export_url,
        plc_directory(work / "plc-mirror", (export_url,)) as (mirror_url, _),
        aiohttp.ClientSession() as http,
    ):
        deadline = time.monotonic() + 60
        while True:
            statuses = []
            for did in dids:
                async with http.get(f"{mirror_url}/{did}") as resp:
                    statuses.append(resp.status)
            if all(s == 200 for s in statuses):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mirror holds {statuses.count(200)} of {len(dids)} DIDs")
            await asyncio.sleep(0.2)
        resolver = IdentityResolver(http, [mirror_url], dev=True)
        for did in dids:
            await resolver.resolve_did(did)
        runs, postgres_runs = [], []
        for run in range(INGEST_RUNS):
            runs.append(await ingest_once(frames, resolver, None, work / f"ingest-{run}.sqlite"))
        for _ in range(INGEST_RUNS):
            postgres_runs.append(
                await ingest_once(frames, resolver, cluster.new_database(), work / "unused")
            )
    peer_runs = [sdk_parse_once(frames) for _ in range(INGEST_RUNS)]
    best = min(runs, key=lambda r: r["seconds"])
    postgres_best = min(postgres_runs, key=lambda r: r["seconds"])
    peer_best = min(s for s, _ in peer_runs)
    peer_commits = peer_runs[0][1]
    return {
        "readme_peers": readme_peers(corpus),
        "frames": len(frames),
        "frame_types": dict(types),
        "dids": len(dids),
        "runs_seconds": [r["seconds"] for r in runs],
        "commits_accepted": best["commits"],
        "commits_per_s": best["commits"] / best["seconds"],
        "frames_per_s": len(frames) / best["seconds"],
        "postgres_runs_seconds": [r["seconds"] for r in postgres_runs],
        "postgres_commits_accepted": postgres_best["commits"],
        "postgres_commits_per_s": postgres_best["commits"] / postgres_best["seconds"],
        "postgres_frames_per_s": len(frames) / postgres_best["seconds"],
        "postgres_rejected": postgres_best["rejected"],
        "emitted": best["emitted"],
        "rejected": best["rejected"],
        "rejected_all_runs": [r["rejected"] for r in runs],
        "desynced": best["desynced"],
        "peer_runs_seconds": [s for s, _ in peer_runs],
        "peer_frames_per_s": len(frames) / peer_best,
        "peer_commits_per_s": peer_commits / peer_best,
    }


def run_ingest(corpus: Path, work: Path, cluster: PostgresCluster) -> dict[str, Any]:
    """Section 1 on one core: this process (and the threads it starts) pinned to one CPU (the
    Postgres server, started before, is not)."""
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})
    try:
        return asyncio.run(measure_ingest(corpus, work, cluster))
    finally:
        if pinned:
            os.sched_setaffinity(0, allowed)


# --- the synthetic PDS -------------------------------------------------------------------------


@dataclass
class Account:
    did: str
    key: K256Keypair
    repo: Repository | None = None


def plc_genesis(key: K256Keypair, rotation: K256Keypair, handle: str, endpoint: str) -> Any:
    """A signed genesis operation naming `endpoint` as the PDS and `key` as the signing key;
    the rotation key is the PDS's own, shared by its accounts (as a PDS does)."""
    return sign_operation(
        {
            "type": "plc_operation",
            "rotationKeys": [rotation.did()],
            "verificationMethods": {"atproto": key.did()},
            "alsoKnownAs": [f"at://{handle}"],
            "services": {
                "atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": endpoint}
            },
            "prev": None,
        },
        rotation,
    )


def new_accounts(
    count: int, endpoint: str, prefix: str, rotation: K256Keypair
) -> tuple[list[Account], list[tuple[str, Any]]]:
    accounts, ops = [], []
    for i in range(count):
        key = K256Keypair.generate()
        op = plc_genesis(key, rotation, f"{prefix}{i}.test", endpoint)
        did = did_for_genesis(op)
        accounts.append(Account(did, key))
        ops.append((did, op))
    return accounts, ops


async def register(directory: Directory, ops: list[tuple[str, Any]]) -> float:
    """Put every genesis operation in the directory (verified, batched); returns ops/s."""
    start = time.perf_counter()
    for lo in range(0, len(ops), 4000):
        await asyncio.gather(
            *(directory.submit(did, parse_operation(op)) for did, op in ops[lo : lo + 4000])
        )
    return len(ops) / (time.perf_counter() - start)


def commit_frame(did: str, result: CommitResult, seq: int) -> bytes:
    """The `#commit` frame a PDS sequences for `result`."""
    return message_frame("#commit", {**commit_body(did, result, [], iso_now()), "seq": seq})


def post(i: int) -> Write:
    record = {"$type": COLLECTION, "text": f"benchmark post number {i}", "createdAt": iso_now()}
    return Write("create", COLLECTION, next_tid(), record)


def pds_app(firehose: Firehose) -> web.Application:
    async def describe(request: web.Request) -> web.Response:
        return web.json_response({"did": "did:web:localhost", "availableUserDomains": [".test"]})

    app = web.Application()
    app.router.add_get("/xrpc/com.atproto.server.describeServer", describe)
    app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", firehose.subscribe)
    return app


@dataclass
class Pds:
    port: int
    firehose: Firehose = field(default_factory=Firehose)

    @property
    def hostname(self) -> str:
        return f"localhost:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"


# --- the relay process -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def relay_process(
    work: Path, plc_url: str, pdses: list[Pds], database_url: str | None
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`strata relay` as its own process on 127.0.0.1, following and trusting every `pdses`,
    its tables in Postgres at `database_url` or else in SQLite; yields its URL, the process
    and its log."""
    follow: list[str] = []
    for pds in pdses:
        follow += ["--crawl", pds.endpoint, "--trusted", pds.hostname]
    if database_url is not None:
        follow += ["--database-url", database_url]
    args = ("--dev", "--plc-url", plc_url, *follow)
    async with strata_service("relay", work / "relay", *args) as (url, proc):
        yield url, proc, work / "relay.log"


def metric_by_label(samples: dict[str, float], name: str) -> dict[str, float]:
    return {k[len(name) :]: v for k, v in samples.items() if k.startswith(name + "{") and v}


async def host_seq(http: aiohttp.ClientSession, url: str, hostname: str) -> int:
    async with http.get(
        f"{url}/xrpc/com.atproto.sync.getHostStatus", params={"hostname": hostname}
    ) as resp:
        if resp.status != 200:
            return -1
        return int((await resp.json())["seq"])


async def wait_for(
    what: str, check: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if proc.poll() is not None:
            raise RuntimeError(f"the relay exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


# --- consumers that only read WebSocket frame headers -----------------------------------------


class CountingConsumer(asyncio.Protocol):
    """A `subscribeRepos` consumer that does the HTTP upgrade itself, then only reads WebSocket
    frame headers: it counts binary messages, notes when each arrived, answers pings, and skips
    payloads without buffering them. An error frame (CBOR header `{op: -1}`) is kept aside."""

    def __init__(self, path: str, authority: str, expect: int) -> None:
        loop = asyncio.get_running_loop()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.expect = expect
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.handshake = bytearray()
        self.remaining = 0
        self.opcode = 0
        self.fin = True
        self.first: int | None = None
        self.error_payload: bytearray | None = None
        self.arrivals = array("d")
        self.messages = 0
        self.payload_bytes = 0
        self.errors: list[str] = []
        self.first_at = 0.0
        self.last_at = 0.0
        self.closed_by_server = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"closed before the upgrade: {exc}"))
        self._finish()

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.upgraded.done():
            self.handshake += data
            end = self.handshake.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.handshake[: self.handshake.find(b"\r\n")])
            if not status.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded.set_result(None)
            data = bytes(self.handshake[end + 4 :])
            self.handshake.clear()
        if self.head:
            data = bytes(self.head) + data
            self.head.clear()
        self._frames(data, now)

    def _frames(self, data: bytes, now: float) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self.remaining:
                take = min(self.remaining, n - pos)
                if self.first is None:
                    self.first = data[pos]
                    if self.first == 0xA1 and self.opcode == 2:
                        self.error_payload = bytearray()
                if self.error_payload is not None:
                    self.error_payload += data[pos : pos + take]
                self.remaining -= take
                pos += take
                if not self.remaining:
                    self._end_of_frame(now)
                continue
            if n - pos < 2:
                self.head += data[pos:]
                return
            b0, b1 = data[pos], data[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                head = 4
            elif length == 127:
                head = 10
            if b1 & 0x80:
                head += 4  # a masked frame: servers do not send them, but skip it correctly
            if n - pos < head:
                self.head += data[pos:]
                return
            if length == 126:
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            opcode = b0 & 0x0F
            if opcode >= 8:  # a control frame: at most 125 bytes, read whole
                if n - pos < head + length:
                    self.head += data[pos:]
                    return
                self._control(opcode, data[pos + head : pos + head + length])
                pos += head + length
                continue
            if opcode != 0:  # the first frame of a message (0 continues one)
                self.opcode, self.first, self.error_payload = opcode, None, None
            self.fin = bool(b0 & 0x80)
            self.payload_bytes += length
            self.remaining = length
            pos += head
            if not length:
                self._end_of_frame(now)

    def _end_of_frame(self, now: float) -> None:
        if not self.fin or self.opcode != 2:
            return
        if self.error_payload is not None:
            try:
                _, body = decode_pair(bytes(self.error_payload))
                self.errors.append(f"{body.get('error')}: {body.get('message')}")
            except Exception as exc:
                self.errors.append(f"undecodable error frame: {exc}")
            self.error_payload = None
            return
        if not self.messages:
            self.first_at = now
        self.messages += 1
        self.last_at = now
        self.arrivals.append(now)
        if self.messages >= self.expect:
            self._finish()

    def _control(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == 9:  # ping: answer with a masked pong carrying the same payload
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
        elif opcode == 8:
            self.closed_by_server = True
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if code not in (None, 1000):
                self.errors.append(f"closed with {code} {payload[2:].decode(errors='replace')}")
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            mask = os.urandom(4)
            payload = (1000).to_bytes(2, "big")
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self.transport.write(bytes([0x88, 0x82]) + mask + masked)
            self.transport.close()


async def connect_consumer(url: str, expect: int) -> CountingConsumer:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError(f"consumers connect to 127.0.0.1 only, not {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    consumer = CountingConsumer(path, parts.netloc, expect)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: consumer, "127.0.0.1", parts.port)
    await asyncio.wait_for(consumer.upgraded, 10)
    return consumer


async def consumers_main(url: str, count: int, expect: int, out: Path) -> None:
    """The consumer process: `count` consumers; prints `ready` once every one is subscribed,
    runs until each has `expect` messages or a line arrives on stdin, then writes results."""
    loop = asyncio.get_running_loop()
    consumers = [await connect_consumer(url, expect) for _ in range(count)]
    print("ready", flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    stop = asyncio.ensure_future(stdin.readline())
    everyone = asyncio.gather(*(c.finished for c in consumers))
    await asyncio.wait({stop, everyone}, return_when=asyncio.FIRST_COMPLETED)
    summary = [
        {
            "messages": c.messages,
            "errors": c.errors,
            "closed_by_server": c.closed_by_server,
            "payload_bytes": c.payload_bytes,
        }
        for c in consumers
    ]
    with out.open("wb") as f:
        f.write(json.dumps(summary).encode() + b"\n")
        for c in consumers:
            c.arrivals.tofile(f)
    for c in consumers:
        c.close()
    stop.cancel()
    everyone.cancel()
    print("done", flush=True)


def read_consumer_results(path: Path) -> tuple[list[dict[str, Any]], list[array[float]]]:
    with path.open("rb") as f:
        summary = json.loads(f.readline())
        arrivals = []
        for entry in summary:
            values = array("d")
            values.fromfile(f, entry["messages"])
            arrivals.append(values)
    return summary, arrivals


# --- 2, 3, 4: the relay process ----------------------------------------------------------------


@dataclass
class Prepared:
    lag_pds: Pds
    memory_pdses: list[Pds]
    lag_accounts: int
    warm_frames: int
    lag_frames: int
    generate_seconds: float
    plc_ops_per_s: float


async def prepare(
    sizes: Sizes,
    directory: Directory,
    lag_pds: Pds,
    memory_pdses: list[Pds],
    memory: bool,
    batches: int,
) -> Prepared:
    """Accounts, their DIDs in the directory, and every frame the sources will send (`batches`
    lag batches, one per lag measure)."""
    start = time.perf_counter()
    rotation = K256Keypair.generate()
    accounts, ops = new_accounts(LAG_ACCOUNTS, lag_pds.endpoint, "lag", rotation)
    known: list[tuple[Pds, Account]] = []
    total = sizes.memory_accounts if memory else 0
    per_host = -(-total // len(memory_pdses))
    for h, pds in enumerate(memory_pdses):
        count = max(0, min(per_host, total - h * per_host))
        more, more_ops = new_accounts(count, pds.endpoint, f"m{h}-", rotation)
        known += [(pds, account) for account in more]
        ops += more_ops
    plc_rate = await register(directory, ops)
    note(f"  {len(ops):,} DIDs registered ({plc_rate:,.0f} operations/s); building frames ...")

    firehose = lag_pds.firehose
    for account in accounts:  # the empty repository's first commit, as a new account's PDS sends
        result = Repository.create({}, account.did, account.key)
        account.repo = result.repo
        firehose.add(commit_frame(account.did, result, firehose.seq + 1))
    warm = firehose.seq
    for i in range(sizes.lag_frames * batches):
        account = accounts[i % len(accounts)]
        assert account.repo is not None
        result = account.repo.apply_writes([post(i)], account.key)
        account.repo = result.repo
        firehose.add(commit_frame(account.did, result, firehose.seq + 1))
    for i, (pds, account) in enumerate(known):
        result = Repository.create({}, account.did, account.key, [post(i)])
        pds.firehose.add(commit_frame(account.did, result, pds.firehose.seq + 1))
    await asyncio.sleep(0)
    return Prepared(
        lag_pds=lag_pds,
        memory_pdses=memory_pdses,
        lag_accounts=len(accounts),
        warm_frames=warm,
        lag_frames=sizes.lag_frames,
        generate_seconds=time.perf_counter() - start,
        plc_ops_per_s=plc_rate,
    )


async def start_consumers(
    url: str, count: int, expect: int, out: Path
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), "--consume", url, "--consumers", str(count),
        "--expect", str(expect), "--out", str(out),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"ready":
        raise RuntimeError(f"the consumer process did not start: {line!r}")
    return proc


async def warm_up(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], prepared: Prepared
) -> None:
    """Every lag account's first commit, before anything is measured: the relay learns these
    accounts (and resolves their DIDs) outside the measures, and no consumer sees the frames."""
    pds = prepared.lag_pds
    pds.firehose.publish(prepared.warm_frames)

    async def read() -> bool:
        return await host_seq(http, url, pds.hostname) >= prepared.warm_frames

    await wait_for("the relay to read the warm-up commits", read, 60, proc)
    await asyncio.sleep(0.5)
    samples = await metrics(http, url)
    if metric_sum(samples, "strata_relay_last_seq") < prepared.warm_frames:
        rejected = metric_by_label(samples, "strata_relay_events_rejected_total")
        raise RuntimeError(f"the relay dropped warm-up commits: {rejected}")


async def measure_lag(
    http: aiohttp.ClientSession,
    url: str,
    procs: list[subprocess.Popen[bytes]],
    firehose: Firehose,
    count: int,
    work: Path,
) -> dict[str, Any]:
    """Lag from the source to consumers of the relay at `url` (the last of `procs`, the relays
    the frames pass through) for the next `count` frames the source has built."""
    proc = procs[-1]
    first = firehose.published
    before = await metrics(http, url)
    out = work / f"consumers-{first}.bin"
    ws_url = url.replace("http://", "ws://", 1) + "/xrpc/com.atproto.sync.subscribeRepos"
    consumers = await start_consumers(ws_url, LAG_CONSUMERS, count, out)
    assert consumers.stdin is not None and consumers.stdout is not None

    async def subscribed() -> bool:
        samples = await metrics(http, url)
        return metric_sum(samples, "strata_firehose_consumers") >= LAG_CONSUMERS

    await wait_for("the consumers to subscribe", subscribed, 30, proc)
    await asyncio.sleep(0.5)
    note(f"  {LAG_CONSUMERS} consumers subscribed; sending {count:,} commits ...")
    total = first + count
    cpu_before = [cpu_seconds(p.pid) for p in procs], cpu_seconds(consumers.pid)
    start = time.perf_counter()
    while firehose.published < total:
        due = first + int((time.perf_counter() - start) * LAG_RATE) + 1
        if due > firehose.published:
            firehose.publish(min(due, total) - firehose.published)
        await asyncio.sleep(BURST_INTERVAL)
    send_seconds = time.perf_counter() - start
    relay_cpu = [
        (cpu_seconds(p.pid) - used) / send_seconds
        for p, used in zip(procs, cpu_before[0], strict=True)
    ]
    consumers_cpu = (cpu_seconds(consumers.pid) - cpu_before[1]) / send_seconds
    ended = False
    with contextlib.suppress(TimeoutError):
        ended = (await asyncio.wait_for(consumers.stdout.readline(), 60)).strip() == b"done"
    if not ended and consumers.returncode is None:
        # Some consumer is still short of frames a minute after the last was sent: stop them.
        consumers.stdin.write(b"stop\n")
        await consumers.stdin.drain()
        await asyncio.wait_for(consumers.stdout.readline(), 30)
    consumers.stdin.close()
    await consumers.wait()
    if not out.exists():
        raise RuntimeError(f"the consumer process failed (exit {consumers.returncode})")
    after = await metrics(http, url)

    summary, arrivals = read_consumer_results(out)
    sent = firehose.sent_at[first:total]
    lags: list[float] = []
    for values in arrivals:
        lags.extend(a - s for a, s in zip(values, sent, strict=False))
    lags.sort()
    delivered = [entry["messages"] for entry in summary]
    errors = sorted({e for entry in summary for e in entry["errors"]})
    return {
        "sent": count,
        "send_seconds": send_seconds,
        "send_rate": count / send_seconds,
        "relay_cpu": relay_cpu,
        "consumers_cpu": consumers_cpu,
        "consumers": LAG_CONSUMERS,
        "delivered_total": sum(delivered),
        "delivered_min": min(delivered),
        "complete_consumers": sum(d == count for d in delivered),
        "all_before_deadline": ended,
        "consumer_errors": errors,
        "p50_ms": percentile(lags, 0.50) * 1000 if lags else None,
        "p99_ms": percentile(lags, 0.99) * 1000 if lags else None,
        "max_ms": lags[-1] * 1000 if lags else None,
        "negative": sum(1 for lag in lags if lag < 0),
        "slow_consumers_closed": metric_sum(after, "strata_firehose_slow_consumers_total")
        - metric_sum(before, "strata_firehose_slow_consumers_total"),
        "throttle_waits": metric_sum(after, "strata_relay_throttle_waits_total")
        - metric_sum(before, "strata_relay_throttle_waits_total"),
    }


async def measure_memory(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], prepared: Prepared
) -> dict[str, Any]:
    """RSS before, halfway and after the first commits of every memory account. By halfway the
    relay's live window of recent frames holds frames of this size (at full scale), so the
    second half's growth is closer to the cost of one more known account."""
    pdses = prepared.memory_pdses
    accounts = sum(p.firehose.seq for p in pdses)
    before_seq = metric_sum(await metrics(http, url), "strata_relay_last_seq")
    samples = [await settled_rss(proc.pid)]
    note(f"  relay RSS {samples[0] / 1024:.0f} MiB; sending {accounts:,} first commits ...")
    seconds = 0.0
    for targets in (
        {p.port: p.firehose.seq // 2 for p in pdses},
        {p.port: p.firehose.seq for p in pdses},
    ):
        start = time.perf_counter()
        while any(p.firehose.published < targets[p.port] for p in pdses):
            for pds in pdses:
                left = targets[pds.port] - pds.firehose.published
                if left > 0 and pds.firehose.buffered() < 1 << 20:
                    pds.firehose.publish(min(left, 500))
            await asyncio.sleep(0.002)

        async def taken(targets: dict[int, int] = targets) -> bool:
            for pds in pdses:
                if await host_seq(http, url, pds.hostname) < targets[pds.port]:
                    return False
            return True

        await wait_for("the relay to read the first commits", taken, 900, proc)
        seconds += time.perf_counter() - start
        samples.append(await settled_rss(proc.pid))
    before, half, after = samples
    second_half = accounts - sum(p.firehose.seq // 2 for p in pdses)
    after_seq = metric_sum(await metrics(http, url), "strata_relay_last_seq")
    return {
        "accounts": accounts,
        "hosts": len(pdses),
        "accepted": int(after_seq - before_seq),
        "rss_before_kib": before,
        "rss_half_kib": half,
        "rss_after_kib": after,
        "kib_per_account": (after - before) / accounts,
        "kib_per_account_second_half": (after - half) / second_half,
        "ingest_seconds": seconds,
        "new_accounts_per_s": accounts / seconds,
    }


async def measure_replay(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]
) -> dict[str, Any]:
    last = int(metric_sum(await metrics(http, url), "strata_relay_last_seq"))
    ws_url = url.replace("http://", "ws://", 1) + "/xrpc/com.atproto.sync.subscribeRepos?cursor=0"
    start = time.time()
    consumer = await connect_consumer(ws_url, last)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(consumer.finished, 300)
    consumer.close()
    elapsed = consumer.last_at - start
    return {
        "events": consumer.messages,
        "expected": last,
        "bytes": consumer.payload_bytes,
        "seconds": elapsed,
        "events_per_s": consumer.messages / elapsed if elapsed > 0 else None,
        "mb_per_s": consumer.payload_bytes / elapsed / 1e6 if elapsed > 0 else None,
        "errors": consumer.errors,
    }


async def measure_chain(
    stack: contextlib.AsyncExitStack,
    http: aiohttp.ClientSession,
    first: tuple[str, subprocess.Popen[bytes]],
    plc_url: str,
    prepared: Prepared,
    sizes: Sizes,
    work: Path,
) -> dict[str, Any]:
    """A second relay following the first; consumers read the second. Its first commit from
    each account (one per account, sent before the measure) makes it look the DIDs up, as
    warm-up does for the first relay."""
    url, proc = first
    args = ("--dev", "--plc-url", plc_url, "--upstream", url)
    second_url, second = await stack.enter_async_context(
        strata_service("relay", work / "relay-b", *args)
    )

    async def following() -> bool:
        samples = await metrics(http, url)
        return metric_sum(samples, "strata_firehose_consumers") >= 1

    await wait_for("the second relay to follow the first", following, 30, second)
    await asyncio.sleep(0.5)
    firehose = prepared.lag_pds.firehose
    firehose.publish(prepared.lag_accounts)

    async def caught_up() -> bool:
        ahead = metric_sum(await metrics(http, url), "strata_relay_last_seq")
        behind = metric_sum(await metrics(http, second_url), "strata_relay_last_seq")
        return behind >= prepared.lag_accounts and ahead >= prepared.warm_frames

    await wait_for("the second relay to learn the accounts", caught_up, 60, second)
    lag = await measure_lag(
        http, second_url, [proc, second], firehose, sizes.lag_frames - prepared.lag_accounts, work
    )
    final = await metrics(http, second_url)
    lag["second_rejected"] = metric_by_label(final, "strata_relay_events_rejected_total")
    return lag


async def measure_relay(
    sizes: Sizes, work: Path, sections: str, database_url: str | None = None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    lag_pds = Pds(0)
    memory_pdses = [Pds(0) for _ in range(MEMORY_HOSTS)]
    async with contextlib.AsyncExitStack() as stack:
        for pds in [lag_pds, *memory_pdses]:
            pds.port = await stack.enter_async_context(
                listening(pds_app(pds.firehose), "127.0.0.1", 0)
            )
        plc_url, directory = await stack.enter_async_context(plc_directory(work / "plc"))
        note("preparing accounts and frames ...")
        batches = ("2" in sections) + ("5" in sections)
        prepared = await prepare(sizes, directory, lag_pds, memory_pdses, "3" in sections, batches)
        results["prepare"] = {
            "seconds": prepared.generate_seconds,
            "plc_ops_per_s": prepared.plc_ops_per_s,
        }
        note(f"  prepared in {prepared.generate_seconds:.1f} s; starting strata relay ...")
        url, proc, log_path = await stack.enter_async_context(
            relay_process(work, plc_url, [lag_pds, *memory_pdses], database_url)
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def connected() -> bool:
            return all(p.firehose.connections for p in [lag_pds, *memory_pdses])

        await wait_for("the relay to subscribe to the sources", connected, 30, proc)
        results["rss_start_kib"] = rss_kib(proc.pid)
        await warm_up(http, url, proc, prepared)
        if "3" in sections:
            note("3. memory per known account ...")
            results["memory"] = await measure_memory(http, url, proc, prepared)
        if "2" in sections:
            note("2. end-to-end lag ...")
            results["lag"] = await measure_lag(
                http, url, [proc], lag_pds.firehose, sizes.lag_frames, work
            )
        if "4" in sections:
            note("4. replay from disk ...")
            results["replay"] = await measure_replay(http, url, proc)
        if "5" in sections:
            note("5. lag through two chained relays ...")
            results["chain"] = await measure_chain(
                stack, http, (url, proc), plc_url, prepared, sizes, work
            )
        final = await metrics(http, url)
        results["relay_rejected"] = metric_by_label(final, "strata_relay_events_rejected_total")
        results["relay_upstream_failures"] = metric_sum(
            final, "strata_relay_upstream_failures_total"
        )
        results["relay_slow_consumers"] = metric_sum(final, "strata_firehose_slow_consumers_total")
        results["relay_last_seq"] = metric_sum(final, "strata_relay_last_seq")
        results["relay_exit"] = proc.poll()
    log_lines = log_path.read_text(errors="replace").splitlines()
    results["relay_log_lines"] = len(log_lines)
    results["relay_log_head"] = log_lines[:10]
    return results


# --- the table ---------------------------------------------------------------------------------


def fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def build_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    no_relay = "n/a (no reference relay can run here)"
    ingest = results.get("ingest")
    if ingest:
        ratio = ingest["commits_per_s"] / ingest["peer_commits_per_s"]
        rows.append(
            (
                f"1. verified ingest, one core, {ingest['frames']:,} recorded frames "
                f"(best of {INGEST_RUNS}): commits accepted/s",
                f"{ingest['commits_per_s']:,.0f}/s",
                f"{ingest['peer_commits_per_s']:,.0f}/s atproto SDK parse only (no verification)",
                f"{ratio:.2f}",
                f">= 5,000/s: {'met' if ingest['commits_per_s'] >= 5000 else 'NOT met'}",
            )
        )
        rows.append(
            (
                "   frames/s (every type)",
                f"{ingest['frames_per_s']:,.0f}/s",
                f"{ingest['peer_frames_per_s']:,.0f}/s",
                f"{ingest['frames_per_s'] / ingest['peer_frames_per_s']:.2f}",
                "",
            )
        )
        rows.append(
            (
                "   on Postgres: commits accepted/s",
                f"{ingest['postgres_commits_per_s']:,.0f}/s",
                f"{ingest['commits_per_s']:,.0f}/s on SQLite (above)",
                f"{ingest['postgres_commits_per_s'] / ingest['commits_per_s']:.2f}",
                "",
            )
        )
        rows.append(
            (
                "   on Postgres: frames/s (every type)",
                f"{ingest['postgres_frames_per_s']:,.0f}/s",
                f"{ingest['frames_per_s']:,.0f}/s on SQLite",
                f"{ingest['postgres_frames_per_s'] / ingest['frames_per_s']:.2f}",
                "",
            )
        )
        rejected = sum(ingest["rejected"].values())
        rows.append(
            (
                "   commits accepted / rejected events",
                f"{ingest['commits_accepted']:,} / {rejected}",
                f"{ingest['frame_types'].get('#commit', 0):,} #commit frames recorded",
                "",
                "0 rejected: " + ("met" if rejected == 0 else "NOT met"),
            )
        )
    lag = results.get("relay", {}).get("lag")
    if lag:
        met = lag["p99_ms"] is not None and lag["p99_ms"] < 500
        rows.append(
            (
                f"2. lag p99, {LAG_RATE:,} events/s, {lag['consumers']} consumers",
                fmt(lag["p99_ms"], "{:,.1f} ms"),
                no_relay,
                "",
                f"< 500 ms: {'met' if met else 'NOT met'}",
            )
        )
        rows.append(("   lag p50", fmt(lag["p50_ms"], "{:,.1f} ms"), no_relay, "", ""))
        rows.append(("   lag max", fmt(lag["max_ms"], "{:,.1f} ms"), no_relay, "", ""))
        expected = lag["sent"] * lag["consumers"]
        rows.append(
            (
                "   frames delivered / sent x consumers",
                f"{lag['delivered_total']:,} / {expected:,}",
                no_relay,
                "",
                "all: " + ("met" if lag["delivered_total"] == expected else "NOT met"),
            )
        )
        rows.append(("   source send rate achieved", f"{lag['send_rate']:,.0f}/s", "", "", ""))
    postgres_lag = results.get("relay_postgres", {}).get("lag")
    if postgres_lag:
        sqlite_p99 = lag["p99_ms"] if lag else None
        ratio = (
            postgres_lag["p99_ms"] / sqlite_p99
            if sqlite_p99 and postgres_lag["p99_ms"] is not None
            else None
        )
        met = postgres_lag["p99_ms"] is not None and postgres_lag["p99_ms"] < 500
        rows.append(
            (
                "   on Postgres: lag p99",
                fmt(postgres_lag["p99_ms"], "{:,.1f} ms"),
                f"{fmt(sqlite_p99, '{:,.1f} ms')} on SQLite (above)",
                fmt(ratio, "{:.2f}"),
                f"< 500 ms: {'met' if met else 'NOT met'}",
            )
        )
        rows.append(
            (
                "   on Postgres: lag p50",
                fmt(postgres_lag["p50_ms"], "{:,.1f} ms"),
                f"{fmt(lag['p50_ms'] if lag else None, '{:,.1f} ms')} on SQLite",
                "",
                "",
            )
        )
        expected = postgres_lag["sent"] * postgres_lag["consumers"]
        rows.append(
            (
                "   on Postgres: frames delivered / sent x consumers",
                f"{postgres_lag['delivered_total']:,} / {expected:,}",
                "",
                "",
                "all: " + ("met" if postgres_lag["delivered_total"] == expected else "NOT met"),
            )
        )
    memory = results.get("relay", {}).get("memory")
    if memory:
        rows.append(
            (
                f"3. relay RSS before -> half -> after {memory['accounts']:,} new accounts",
                f"{memory['rss_before_kib'] / 1024:,.0f} -> {memory['rss_half_kib'] / 1024:,.0f}"
                f" -> {memory['rss_after_kib'] / 1024:,.0f} MiB",
                "n/a",
                "",
                "",
            )
        )
        rows.append(
            (
                "   RSS growth per known account, over all of them",
                f"{memory['kib_per_account']:.2f} KiB",
                "n/a",
                "",
                "",
            )
        )
        rows.append(
            (
                "   RSS growth per known account, second half only",
                f"{memory['kib_per_account_second_half']:.2f} KiB",
                "n/a",
                "",
                "",
            )
        )
        rows.append(
            (
                f"   first commits of new accounts/s ({memory['hosts']} PDSes)",
                f"{memory['new_accounts_per_s']:,.0f}/s",
                "n/a",
                "",
                "",
            )
        )
    replay = results.get("relay", {}).get("replay")
    if replay:
        rows.append(
            (
                f"4. replay from disk, cursor=0 ({replay['events']:,} of "
                f"{replay['expected']:,} events)",
                f"{fmt(replay['events_per_s'], '{:,.0f}')} events/s, "
                f"{fmt(replay['mb_per_s'], '{:,.1f}')} MB/s",
                "n/a (no peer holds the same events)",
                "",
                "",
            )
        )
    chain = results.get("relay", {}).get("chain")
    if chain:
        one = lag["p99_ms"] if lag else None
        ratio = chain["p99_ms"] / one if one and chain["p99_ms"] is not None else None
        met = chain["p99_ms"] is not None and chain["p99_ms"] < 500
        rows.append(
            (
                f"5. lag p99 through two chained relays, {LAG_RATE:,} events/s, "
                f"{chain['consumers']} consumers",
                fmt(chain["p99_ms"], "{:,.1f} ms"),
                f"{fmt(one, '{:,.1f} ms')} through one relay (2)",
                fmt(ratio, "{:.2f}"),
                f"< 500 ms: {'met' if met else 'NOT met'}",
            )
        )
        rows.append(("   lag p50", fmt(chain["p50_ms"], "{:,.1f} ms"), "", "", ""))
        expected = chain["sent"] * chain["consumers"]
        rows.append(
            (
                "   frames delivered / sent x consumers",
                f"{chain['delivered_total']:,} / {expected:,}",
                "",
                "",
                "all: " + ("met" if chain["delivered_total"] == expected else "NOT met"),
            )
        )
    return rows


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    header = ("measure", "strata", "peer", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print("(ratio: strata / peer)")


def print_notes(results: dict[str, Any]) -> None:
    ingest = results.get("ingest")
    if ingest:
        if ingest["readme_peers"]:
            print("1: the corpus README's peer figures (context only, not measured in this run):")
            print(
                textwrap.fill(
                    ingest["readme_peers"], 100, initial_indent="   ", subsequent_indent="   "
                )
            )
        runs = ", ".join(f"{s:.2f}" for s in ingest["runs_seconds"])
        peer = ", ".join(f"{s:.2f}" for s in ingest["peer_runs_seconds"])
        postgres = ", ".join(f"{s:.2f}" for s in ingest["postgres_runs_seconds"])
        print(f"1: strata runs {runs} s; SDK runs {peer} s; events emitted {ingest['emitted']}")
        print(
            f"1: on Postgres, runs {postgres} s; commits accepted"
            f" {ingest['postgres_commits_accepted']:,}; rejected"
            f" {ingest['postgres_rejected'] or 'none'}"
        )
        if ingest["rejected"]:
            print(f"1: REJECTED by reason: {ingest['rejected']}")
        if ingest["desynced"]:
            print(f"1: {ingest['desynced']} accounts desynchronized")
    relay = results.get("relay")
    if relay:
        lag = relay.get("lag")
        if lag:
            print(
                f"2: {lag['complete_consumers']} of {lag['consumers']} consumers got every frame"
                f" (fewest {lag['delivered_min']:,}); sent in {lag['send_seconds']:.1f} s;"
                f" slow consumers closed {lag['slow_consumers_closed']:.0f};"
                f" throttle waits {lag['throttle_waits']:.0f}; CPU while sending: relay"
                f" {lag['relay_cpu'][0]:.0%} of a core, consumers {lag['consumers_cpu']:.0%};"
                f" frames arriving before they were sent (misaligned): {lag['negative']}"
            )
            for error in lag["consumer_errors"]:
                print(f"2: consumer error: {error}")
        chain = relay.get("chain")
        if chain:
            cpu = " and ".join(f"{c:.0%}" for c in chain["relay_cpu"])
            print(
                f"5: {chain['complete_consumers']} of {chain['consumers']} consumers got every"
                f" frame (fewest {chain['delivered_min']:,}); relays' CPU {cpu} of a core,"
                f" consumers {chain['consumers_cpu']:.0%}; second relay rejected"
                f" {chain['second_rejected'] or 'none'}"
            )
        memory = relay.get("memory")
        if memory:
            print(
                f"3: {memory['accepted']:,} of {memory['accounts']:,} first commits relayed in"
                f" {memory['ingest_seconds']:.1f} s; relay RSS when it had just subscribed"
                f" {relay['rss_start_kib'] / 1024:.0f} MiB. The growth over all accounts includes"
                " the relay's live window of recent frames filling up (bounded, not per account)"
            )
        replay = relay.get("replay")
        if replay:
            print(
                f"4: {replay['bytes'] / 1e6:,.1f} MB in {replay['seconds']:.2f} s"
                + (f"; errors {replay['errors']}" if replay["errors"] else "")
            )
        postgres_lag = results.get("relay_postgres", {}).get("lag")
        if postgres_lag:
            print(
                f"2: on Postgres, {postgres_lag['complete_consumers']} of"
                f" {postgres_lag['consumers']} consumers got every frame (fewest"
                f" {postgres_lag['delivered_min']:,}); CPU while sending: relay"
                f" {postgres_lag['relay_cpu'][0]:.0%} of a core (the Postgres server apart)"
            )
            for error in postgres_lag["consumer_errors"]:
                print(f"2: on Postgres, consumer error: {error}")
        prep = relay["prepare"]
        print(
            f"setup: accounts, DIDs and frames prepared in {prep['seconds']:.1f} s"
            f" (directory {prep['plc_ops_per_s']:,.0f} ops/s)"
        )
        print(
            f"relay: rejected {relay['relay_rejected'] or 'none'}; upstream failures"
            f" {relay['relay_upstream_failures']:.0f}; slow consumers closed"
            f" {relay['relay_slow_consumers']:.0f}; last seq {relay['relay_last_seq']:,.0f};"
            f" {relay['relay_log_lines']} log lines at warning or above"
        )
        for line in relay["relay_log_head"]:
            print(f"  relay log: {line[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the sizes")
    parser.add_argument("--corpus", type=Path, default=None, help="the recorded corpus folder")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--sections", default="12345", help="which measures to run (e.g. 12)")
    parser.add_argument("--consume", help=argparse.SUPPRESS)
    parser.add_argument("--consumers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        asyncio.run(consumers_main(args.consume, args.consumers, args.expect, args.out))
        return

    sizes = Sizes(args.scale)
    began = time.perf_counter()
    results: dict[str, Any] = {"scale": args.scale, "sizes": sizes.__dict__}
    from tests.postgres import PostgresCluster

    cluster = PostgresCluster()
    with tempfile.TemporaryDirectory(prefix="strata-bench-relay-") as tmp:
        work = Path(tmp)
        if "1" in args.sections:
            corpus = args.corpus or default_corpus()
            if corpus is None or not (corpus / "official-firehose.frames").exists():
                parser.error("no corpus: pass --corpus DIR or set STRATA_CONFORMANCE_DIR")
            note("1. verified ingest of the recorded frames ...")
            results["ingest"] = run_ingest(corpus, work, cluster)
        if set(args.sections) & set("2345"):
            results["relay"] = asyncio.run(measure_relay(sizes, work, args.sections))
        if "2" in args.sections:
            note("2. end-to-end lag, the relay on Postgres ...")
            (work / "postgres").mkdir()
            results["relay_postgres"] = asyncio.run(
                measure_relay(sizes, work / "postgres", "2", cluster.new_database())
            )
    cluster.stop()
    results["seconds"] = time.perf_counter() - began

    print()
    print_table(build_rows(results))
    print_notes(results)
    print(f"total {results['seconds']:.0f} s (scale {args.scale:g})")
    if args.json:
        print()
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
