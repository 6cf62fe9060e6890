"""AppView benchmark: `strata appview` indexing rate and read latency, on SQLite and Postgres.

The issue's measure: on a generated network of 10,000 accounts, 1,000,000 posts and 500,000
follows, the indexing rate from recorded frames (target >= 3,000 events/s on one core), and
getTimeline / getPostThread / getFeed p50 and p99 at 50 concurrent clients (target p99 < 100 ms),
on SQLite and on Postgres. No official AppView can run here, so the comparison column holds
the issue's targets and the ratio is ours / target.

1. The network is generated once in this process (skewed: follows go to popular accounts more
   often, prolific accounts post more; ~10% of posts are replies, gathered in threads; likes and
   reposts on top) and bulk-loaded straight into the AppView's tables, row for row what
   `index_record` writes (the `record` table's JSON included, since hydration reads it), with
   the secondary indexes dropped during the load and rebuilt after it. Postgres is ANALYZEd after
   the load (its autovacuum would do so in service); SQLite is not (the AppView never runs
   ANALYZE). The load time is reported, not judged.
2. Latency: `strata appview` runs as its own process (`--dev`) over that index; 50 client
   coroutines in this process each send requests in a closed loop, `--requests` per endpoint
   or as many as fit in `--max-seconds`, after one untimed request per viewer and 50 requests
   from one client alone (the time a request takes when nothing queues). The 50 viewers are
   real did:plc identities in a `strata plc` directory served by this process, with secp256k1
   keys; every request carries a fresh service token, so the AppView checks a signature each
   time (the DID documents are resolved once and cached). Each viewer follows ~50 accounts.
   getPostThread asks for root posts that have replies; getFeed asks for a feed whose generator
   is a stub served by this process (its DID document names a `#bsky_fg` service;
   `getFeedSkeleton` answers 50 random URIs of recent posts), not `strata feedgen`. Client,
   AppView and Postgres share 2 cores.
3. Indexing, afterwards, with the AppView process stopped, into the same index (so the tables
   already hold the network): frames go through `Indexer.handle_batch` in batches of 500, in
   this process on one core (pinned), decoding included, with no network at all (`resolver`
   and `session` are None: identity refreshes and repository fetches cannot happen, and are
   counted). a) The recorded frames of the official PDS (corpus `official-firehose.frames`,
   #commit/#identity/#account/#sync): the first pass indexes new accounts; the corpus is then
   replayed unchanged until 10 s have passed, and a replayed commit is recognised as already
   indexed (rev check), which is cheap: both are reported. b) A synthetic stream of new
   commits (posts, replies, likes, reposts, follows, a few deletes) by new accounts, built with
   the real repository code (signed commits, MST proofs, CAR blocks) as a PDS emits them.

Run from the repository root: `python bench/appview.py [--backend sqlite|postgres|both]
[--accounts N] [--posts N] [--follows N] [--likes N] [--reposts N] [--requests N]
[--max-seconds S] [--synthetic N] [--corpus DIR] [--json]`; the defaults are the issue's sizes
(about 6 minutes on 2 cores), `--posts 100000 --follows 50000 --requests 500` is a quick run.
Postgres is a throwaway cluster (`tests/postgres.py`, initdb defaults). Progress goes to stderr;
the table, and with `--json` a JSON document after it, to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import string
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY

from harness import free_port, note, percentile, rss_kib, strata_service
from strata.appview.api.feed import TIMELINE_QUERY, days_before
from strata.appview.indexer import Indexer
from strata.appview.records import index_record
from strata.appview.service import AppView, AppViewConfig
from strata.core import cbor
from strata.core.crypto import K256Keypair
from strata.core.errors import CoreError
from strata.core.frames import Frame, decode_frame, message_frame
from strata.core.jwt import sign_service_jwt
from strata.core.plc import parse_operation
from strata.core.repo import Repository, Write
from strata.core.syntax import tid_from_parts
from strata.core.syntax.dates import format_millis
from strata.database import Database, PostgresDatabase, SqliteDatabase
from strata.pds.sequencer import commit_body, iso_now
from strata.serve import listening

ROOT = Path(__file__).resolve().parent.parent

PROFILE = "app.bsky.actor.profile"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"
GENERATOR = "app.bsky.feed.generator"
PDS_URL = "http://localhost:2583"
"""The PDS the generated accounts' actor rows name (only blob URLs would use it)."""

VIEWERS = 50
CONCURRENCY = 50
SOLO_REQUESTS = 50
SIDE_SECONDS = 15.0
"""At most this long for the untimed warm-up and for the one-client run of each endpoint."""
VIEWER_FOLLOWS = 50
SPAN_MS = 30 * 86_400_000
"""The generated network's posts are spread over the 30 days before the run."""
REPLY_SHARE = 0.10
THREAD_ROOT_SHARE = 0.01
"""Top-level posts that draw replies; each reply goes to one of the 200 most recent."""
NESTED_REPLY_SHARE = 0.3
FOLLOW_SKEW = 0.8
POST_SKEW = 0.6
"""Zipf exponents by account rank: how many followers, and how many posts."""
FEED_PAGE = 50
FEED_POOL = 5_000
BATCH = 500
CORPUS_SECONDS = 10.0
TARGET_EVENTS = 3_000.0
TARGET_P99_MS = 100.0
KEPT = frozenset({"#commit", "#identity", "#account", "#sync"})
WORDS = (
    "the", "a", "network", "post", "today", "protocol", "server", "feed", "timeline", "reply",
    "thread", "like", "follow", "account", "photo", "morning", "coffee", "code", "python",
    "sqlite", "postgres", "relay", "index", "query", "latency", "cache", "hello", "world",
    "small", "big", "fast", "slow", "new", "old", "good", "great", "weekend", "music", "book",
    "film", "garden", "rain", "sun",
)  # fmt: skip

COLUMNS: dict[str, tuple[str, ...]] = {
    "actor": ("did", "handle", "pds", "rev", "status", "indexed_at"),
    "record": ("uri", "cid", "did", "collection", "rkey", "json", "indexed_at"),
    "profile": (
        "did", "cid", "display_name", "description", "avatar_cid", "banner_cid", "pinned_post",
        "created_at", "indexed_at",
    ),
    "post": (
        "uri", "cid", "creator", "text", "reply_root", "reply_parent", "quote_uri", "media",
        "langs", "created_at", "indexed_at", "sort_at",
    ),
    "feed_item": ("uri", "cid", "type", "post_uri", "originator", "is_reply", "sort_at"),
    "likes": ("uri", "cid", "creator", "subject", "subject_cid", "sort_at"),
    "repost": ("uri", "cid", "creator", "subject", "subject_cid", "sort_at"),
    "follow": ("uri", "cid", "creator", "subject", "sort_at"),
    "notification": (
        "recipient", "author", "record_uri", "record_cid", "reason", "reason_subject", "sort_at",
    ),
}  # fmt: skip

Row = tuple[Any, ...]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sizes:
    accounts: int
    posts: int
    follows: int
    likes: int
    reposts: int
    requests: int
    synthetic: int
    seed: int


# --- the generated network ---------------------------------------------------------------------


@dataclass
class Viewer:
    did: str
    key: K256Keypair
    op: dict[str, Any]


def new_viewers(count: int) -> list[Viewer]:
    """did:plc identities whose signing key is their own secp256k1 key."""
    from tests.plcops import genesis

    viewers = []
    for k in range(count):
        key = K256Keypair.generate()
        did, op = genesis([key], key, f"viewer{k}.test", PDS_URL)
        viewers.append(Viewer(did, key, op))
    return viewers


@dataclass
class Network:
    dids: list[str]
    viewer_index: list[int]
    tables: dict[str, list[Row]]
    post_uris: list[str]
    post_cids: list[str]
    thread_roots: list[int]
    """Top-level posts that draw replies (in creation order)."""
    thread_targets: list[str]
    """getPostThread subjects: thread roots with at least 3 replies."""
    thread_target_replies: float
    feed_pool: list[str]
    end_ms: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)


def fake_did(rng: random.Random) -> str:
    return "did:plc:" + "".join(rng.choices(string.ascii_lowercase + "234567", k=24))


def tid(ms: int, n: int) -> str:
    """A record key at `ms`, distinct for distinct `n` below 1,024,000 within a millisecond."""
    return tid_from_parts(ms * 1000 + n % 1000, (n // 1000) % 1024)


def cid_of(record: dict[str, Any]) -> str:
    return str(cbor.encode_with_cid(record)[0])


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def zipf_cumulative(n: int, exponent: float) -> list[float]:
    return list(accumulate((rank + 1) ** -exponent for rank in range(n)))


def generate_network(sizes: Sizes, viewers: list[Viewer], rng: random.Random) -> Network:
    """Accounts, profiles, posts (with reply threads), follows, likes and reposts, as rows."""
    began = time.perf_counter()
    n = sizes.accounts
    tables: dict[str, list[Row]] = {name: [] for name in COLUMNS}
    notify = tables["notification"].append
    records = tables["record"].append
    # Viewers are spread over the popularity ranks rather than all at the top.
    viewer_index = [((2 * k + 1) * n) // (2 * len(viewers)) for k in range(len(viewers))]
    dids = [fake_did(rng) for _ in range(n)]
    handles = [f"user{i}.test" for i in range(n)]
    for k, i in enumerate(viewer_index):
        dids[i], handles[i] = viewers[k].did, f"viewer{k}.test"
    end_ms = int(time.time() * 1000) - 3_600_000
    start_ms = end_ms - SPAN_MS
    rev = tid(end_ms, 0)

    for i, did in enumerate(dids):
        joined = format_millis(start_ms - rng.randrange(1, 365 * 86_400) * 1000)
        profile = {
            "$type": PROFILE,
            "displayName": f"User {i}",
            "description": " ".join(rng.choices(WORDS, k=12)),
            "createdAt": joined,
        }
        cid = cid_of(profile)
        tables["actor"].append((did, handles[i], PDS_URL, rev, "active", joined))
        records((f"at://{did}/{PROFILE}/self", cid, did, PROFILE, "self", dumps(profile), joined))
        tables["profile"].append(
            (did, cid, profile["displayName"], profile["description"], None, None, None, joined,
             joined)
        )  # fmt: skip

    # Posts: prolific accounts post more; replies go to recent thread roots or their replies.
    authors = rng.choices(range(n), cum_weights=zipf_cumulative(n, POST_SKEW), k=sizes.posts)
    step = SPAN_MS / max(1, sizes.posts)
    uris: list[str] = []
    cids: list[str] = []
    roots: list[int] = []
    threads: dict[int, list[int]] = {}
    reply_count = 0
    for j, author in enumerate(authors):
        did = dids[author]
        ms = start_ms + int(j * step)
        created, indexed = format_millis(ms), format_millis(ms + 1_000)
        rkey = tid(ms, j)
        uri = f"at://{did}/{POST}/{rkey}"
        text = " ".join(rng.choices(WORDS, k=rng.randrange(4, 20)))
        record: dict[str, Any] = {
            "$type": POST,
            "text": text,
            "createdAt": created,
            "langs": ["en"],
        }
        parent = root = -1
        if roots and rng.random() < REPLY_SHARE:
            root = roots[-1 - rng.randrange(min(len(roots), 200))]
            members = threads[root]
            parent = rng.choice(members) if members and rng.random() < NESTED_REPLY_SHARE else root
            record["reply"] = {
                "root": {"uri": uris[root], "cid": cids[root]},
                "parent": {"uri": uris[parent], "cid": cids[parent]},
            }
            members.append(j)
            reply_count += 1
        elif rng.random() < THREAD_ROOT_SHARE:
            roots.append(j)
            threads[j] = []
        cid = cid_of(record)
        uris.append(uri)
        cids.append(cid)
        records((uri, cid, did, POST, rkey, dumps(record), indexed))
        reply = parent >= 0
        tables["post"].append(
            (uri, cid, did, text, uris[root] if reply else None, uris[parent] if reply else None,
             None, None, "en", created, indexed, created)
        )  # fmt: skip
        tables["feed_item"].append((uri, cid, "post", uri, did, 1 if reply else 0, created))
        if reply and authors[parent] != author:
            notify((dids[authors[parent]], did, uri, cid, "reply", uris[parent], created))

    def post_ms(j: int) -> int:
        return start_ms + int(j * step)

    # Follows: every viewer follows VIEWER_FOLLOWS accounts, the rest go to random followers;
    # the followed are drawn by popularity.
    follow_cum = zipf_cumulative(n, FOLLOW_SKEW)
    total = follow_cum[-1]

    def popular() -> int:
        return min(n - 1, bisect_left(follow_cum, rng.random() * total))

    wanted = min(sizes.follows, n * (n - 1) // 4)
    pairs: set[int] = set()
    edges: list[tuple[int, int]] = []
    viewer_set = set(viewer_index)
    for v in viewer_index:
        followed = 0
        while followed < min(VIEWER_FOLLOWS, n - 1):
            s = popular()
            if s != v and v * n + s not in pairs:
                pairs.add(v * n + s)
                edges.append((v, s))
                followed += 1
    others = [i for i in range(n) if i not in viewer_set]
    while len(edges) < wanted:
        c, s = rng.choice(others), popular()
        if s != c and c * n + s not in pairs:
            pairs.add(c * n + s)
            edges.append((c, s))
    followers = Counter(s for _, s in edges)
    for x, (c, s) in enumerate(edges):
        did = dids[c]
        ms = start_ms + rng.randrange(SPAN_MS)
        created = format_millis(ms)
        rkey = tid(ms, x)
        uri = f"at://{did}/{FOLLOW}/{rkey}"
        record = {"$type": FOLLOW, "subject": dids[s], "createdAt": created}
        cid = cid_of(record)
        records((uri, cid, did, FOLLOW, rkey, dumps(record), created))
        tables["follow"].append((uri, cid, did, dids[s], created))
        notify((dids[s], did, uri, cid, "follow", None, created))

    # Likes and reposts: half on thread roots (the posts that draw attention), half anywhere.
    def interactions(count: int, collection: str, table: str, reason: str) -> None:
        seen: set[int] = set()
        x = 0
        while x < count:
            c = rng.randrange(n)
            hot = roots and rng.random() < 0.5
            j = rng.choice(roots) if hot else rng.randrange(len(uris))
            if c * len(uris) + j in seen:
                continue
            seen.add(c * len(uris) + j)
            did = dids[c]
            ms = min(end_ms, post_ms(j) + rng.randrange(2 * 86_400_000))
            created = format_millis(ms)
            rkey = tid(ms, x)
            uri = f"at://{did}/{collection}/{rkey}"
            record = {
                "$type": collection,
                "subject": {"uri": uris[j], "cid": cids[j]},
                "createdAt": created,
            }
            cid = cid_of(record)
            records((uri, cid, did, collection, rkey, dumps(record), created))
            tables[table].append((uri, cid, did, uris[j], cids[j], created))
            if collection == REPOST:
                tables["feed_item"].append((uri, cid, "repost", uris[j], did, 0, created))
            if authors[j] != c:
                notify((dids[authors[j]], did, uri, cid, reason, uris[j], created))
            x += 1

    if uris:
        interactions(sizes.likes, LIKE, "likes", "like")
        interactions(sizes.reposts, REPOST, "repost", "repost")

    # What a viewer's timeline query sorts: the feed items of the viewer and of whom it follows.
    items_by = Counter(row[4] for row in tables["feed_item"])
    candidates = Counter({v: items_by[dids[v]] for v in viewer_index})
    for c, s in edges[: len(viewer_index) * VIEWER_FOLLOWS]:  # the viewers' follows come first
        if c in viewer_set:
            candidates[c] += items_by[dids[s]]
    replied = [j for j in roots if len(threads[j]) >= 3]
    targets = rng.sample(replied, min(len(replied), 2_000))
    network = Network(
        dids=dids,
        viewer_index=viewer_index,
        tables=tables,
        post_uris=uris,
        post_cids=cids,
        thread_roots=roots,
        thread_targets=[uris[j] for j in targets],
        thread_target_replies=(
            sum(len(threads[j]) for j in targets) / len(targets) if targets else 0.0
        ),
        feed_pool=uris[-FEED_POOL:],
        end_ms=end_ms,
        seconds=time.perf_counter() - began,
    )
    network.stats = {
        "accounts": n,
        "posts": len(uris),
        "replies": reply_count,
        "thread_roots": len(roots),
        "follows": len(edges),
        "likes": len(tables["likes"]),
        "reposts": len(tables["repost"]),
        "notifications": len(tables["notification"]),
        "max_followers": max(followers.values(), default=0),
        "median_followers": sorted(followers[i] for i in range(n))[n // 2],
        "max_posts_by_one_account": max(Counter(authors).values(), default=0),
        "viewer_follows_mean": sum(1 for c, _ in edges if c in viewer_set) / len(viewer_index),
        "timeline_candidates_mean": candidates.total() / len(viewer_index),
        "timeline_candidates_max": max(candidates.values()),
        "rows": sum(len(rows) for rows in tables.values()),
    }
    return network


# --- loading the index -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_index(
    database_url: str | None, data_dir: Path, plc_url: str
) -> AsyncIterator[Database]:
    """The AppView's index, opened and migrated by the service's own code."""
    config = AppViewConfig(
        plc_urls=(plc_url,), relays=(), public_url="http://localhost:1",
        database_url=database_url, dev=True,
    )  # fmt: skip
    appview = AppView(config, data_dir)
    try:
        await appview.open()
        assert appview.db is not None
        yield appview.db
    finally:
        await appview.stop()


async def secondary_indexes(db: Database) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every index the schema made, other than those that back a
    primary key or a constraint."""
    if db.dialect == "sqlite":
        rows = await db.fetch("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        return [(str(r[0]), str(r[1])) for r in rows if r[1] is not None]
    rows = await db.fetch(
        "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public' "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
    )
    return [(str(r[0]), str(r[1])) for r in rows]


async def load_network(db: Database, network: Network) -> dict[str, float]:
    """Every generated row into a migrated, empty index; returns seconds per phase."""
    indexes = await secondary_indexes(db)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # Rebuilding an index once is much faster than keeping it up to date row by row.
    for name, _ in indexes:
        await db.execute(f"DROP INDEX {name}")
    if isinstance(db, SqliteDatabase):
        conn = db.writer
        conn.execute("BEGIN IMMEDIATE")
        for table, columns in COLUMNS.items():
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            conn.executemany(sql, network.tables[table])
        conn.execute("COMMIT")
        timings["rows"] = time.perf_counter() - start
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for _, statement in indexes:
            conn.execute(statement)
        conn.execute("COMMIT")
        timings["indexes"] = time.perf_counter() - start
    elif isinstance(db, PostgresDatabase):
        async with db.pool.acquire() as conn:
            for table, columns in COLUMNS.items():
                await conn.copy_records_to_table(
                    table, records=network.tables[table], columns=list(columns)
                )
            timings["rows"] = time.perf_counter() - start
            start = time.perf_counter()
            await conn.execute("SET maintenance_work_mem = '512MB'")
            for _, statement in indexes:
                await conn.execute(statement)
            timings["indexes"] = time.perf_counter() - start
            start = time.perf_counter()
            # Autovacuum would analyze tables this size within minutes of the load.
            await conn.execute("ANALYZE")
            timings["analyze"] = time.perf_counter() - start
    else:
        raise TypeError(f"unknown database {db!r}")
    return timings


async def add_feed_generator(db: Database, creator: str, feed_did: str, at: str) -> str:
    """The feed's `app.bsky.feed.generator` record, indexed as the indexer would."""
    record = {
        "$type": GENERATOR,
        "did": feed_did,
        "displayName": "Bench recent",
        "description": "50 random recent posts (a stub served by bench/appview.py)",
        "createdAt": at,
    }
    uri = f"at://{creator}/{GENERATOR}/recent"
    async with db.transaction() as tx:
        await index_record(tx, uri, cid_of(record), GENERATOR, record, at)
    return uri


# --- indexing ----------------------------------------------------------------------------------


class LogCounter(logging.Handler):
    """Counts the warnings the AppView logs (by event) while indexing, so none go unseen."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.events: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        error = f" ({fields['error']})" if isinstance(fields, dict) and "error" in fields else ""
        self.events[f"{record.name}: {record.getMessage()}{error}"[:200]] += 1


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def synthetic_frames(network: Network, count: int, rng: random.Random) -> tuple[list[bytes], int]:
    """`count` #commit frames by new accounts, as their PDS would emit them: each account's
    first commit creates its profile, the next ones write posts (a fifth of them replies to
    the network's posts), likes, reposts and follows of the network, and a few deletes.
    Returns the frames and the number of accounts."""
    accounts = max(1, count // 50)
    keys = [K256Keypair.generate() for _ in range(accounts)]
    dids = [fake_did(rng) for _ in range(accounts)]
    repos: list[Repository | None] = [None] * accounts
    deletable: list[list[str]] = [[] for _ in range(accounts)]
    frames: list[bytes] = []
    posts = len(network.post_uris)

    def ref(j: int) -> dict[str, str]:
        return {"uri": network.post_uris[j], "cid": network.post_cids[j]}

    def write(a: int) -> Write:
        now = iso_now()
        roll = rng.random()
        rkey = tid_from_parts(int(time.time() * 1_000_000), rng.randrange(1024))
        if roll < 0.05 and deletable[a]:
            path = deletable[a].pop(rng.randrange(len(deletable[a])))
            collection, _, old = path.partition("/")
            return Write("delete", collection, old)
        if roll < 0.55 or posts == 0:
            record: dict[str, Any] = {
                "$type": POST,
                "text": " ".join(rng.choices(WORDS, k=rng.randrange(4, 20))),
                "createdAt": now,
                "langs": ["en"],
            }
            if posts and network.thread_roots and rng.random() < 0.2:
                j = rng.choice(network.thread_roots)
                record["reply"] = {"root": ref(j), "parent": ref(j)}
            collection = POST
        elif roll < 0.80:
            collection = LIKE
            record = {"$type": LIKE, "subject": ref(rng.randrange(posts)), "createdAt": now}
        elif roll < 0.85:
            collection = REPOST
            record = {"$type": REPOST, "subject": ref(rng.randrange(posts)), "createdAt": now}
        else:
            collection = FOLLOW
            subject = network.dids[rng.randrange(len(network.dids))]
            record = {"$type": FOLLOW, "subject": subject, "createdAt": now}
        deletable[a].append(f"{collection}/{rkey}")
        return Write("create", collection, rkey, record)

    for x in range(count):
        a = x % accounts  # round robin keeps each account's commits in order
        repo = repos[a]
        if repo is None:
            profile = {"$type": PROFILE, "displayName": f"New {a}", "createdAt": iso_now()}
            result = Repository.create(
                {}, dids[a], keys[a], [Write("create", PROFILE, "self", profile)]
            )
        else:
            result = repo.apply_writes([write(a)], keys[a])
        repos[a] = result.repo
        body = commit_body(dids[a], result, [], iso_now())
        frames.append(message_frame("#commit", {**body, "seq": x + 1}))
    return frames, accounts


async def index_frames(
    db: Database, frames: list[bytes], min_seconds: float, seq_base: int
) -> dict[str, Any]:
    """Every frame through one `Indexer` in batches of 500, decoding included; the whole list
    again and again until `min_seconds` have passed (once if 0). Exceptions are counted, not
    hidden: a batch that raises is rolled back and the next one goes on."""
    indexer = Indexer(db, None, None)
    handler = LogCounter()
    logging.getLogger("strata").addHandler(handler)
    errors: Counter[str] = Counter()
    invalid_before = metric("strata_appview_invalid_records_total")
    backfills_before = {
        o: metric("strata_appview_backfills_total", outcome=o) for o in ("indexed", "failed")
    }
    passes: list[dict[str, float]] = []
    seq = seq_base
    began = time.perf_counter()
    try:
        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            events = 0
            for lo in range(0, len(frames), BATCH):
                batch: list[tuple[int, Frame]] = []
                for raw in frames[lo : lo + BATCH]:
                    try:
                        frame = decode_frame(raw)
                    except CoreError as exc:
                        errors[f"decode: {exc}"[:200]] += 1
                        continue
                    if frame.t in KEPT:
                        seq += 1
                        batch.append((seq, frame))
                if not batch:
                    continue
                try:
                    await indexer.handle_batch("bench", batch)
                except Exception as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
                events += len(batch)
                # The subscriber's reader runs between batches; so do the tasks a batch spawned
                # (SQLite calls never suspend, so without this nothing else would ever run).
                await asyncio.sleep(0)
            passes.append(
                {
                    "events": events,
                    "seconds": time.perf_counter() - wall,
                    "cpu": time.process_time() - cpu,
                }
            )
            if time.perf_counter() - began >= min_seconds:
                break
        waiting = {did: len(bodies) for did, bodies in indexer.waiting.items()}
        pending_tasks = Counter(t.get_name().split(" ")[0] for t in indexer.tasks if not t.done())
    finally:
        await indexer.stop()
        logging.getLogger("strata").removeHandler(handler)
    return {
        "passes": passes,
        "errors": dict(errors),
        "log_warnings": dict(handler.events),
        "invalid_records": metric("strata_appview_invalid_records_total") - invalid_before,
        "accounts_waiting_for_fetch": len(waiting),
        "commits_waiting_for_backfill": sum(waiting.values()),
        "backfill_outcomes": {
            o: metric("strata_appview_backfills_total", outcome=o) - v
            for o, v in backfills_before.items()
        },
        "tasks_pending_at_end": dict(pending_tasks),
        "last_seq": seq,
    }


async def count_rows(db: Database, table: str) -> int:
    row = await db.fetchrow(f"SELECT count(*) FROM {table}")
    return int(row[0]) if row else 0


async def measure_indexing(
    db: Database, corpus_frames: list[bytes], synthetic: list[bytes]
) -> dict[str, Any]:
    """Section 3, on one core: this thread pinned to one CPU while it runs."""
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})
    try:
        results: dict[str, Any] = {}
        if corpus_frames:
            before = await count_rows(db, "record")
            first = await index_frames(db, corpus_frames, 0.0, 0)
            after = await count_rows(db, "record")
            replay = await index_frames(db, corpus_frames, CORPUS_SECONDS, first["last_seq"])
            results["corpus_first"] = {**first, "records_added": after - before}
            results["corpus_replay"] = replay
        if synthetic:
            before = await count_rows(db, "record")
            run = await index_frames(db, synthetic, 0.0, 10_000_000)
            results["synthetic"] = {**run, "records_added": await count_rows(db, "record") - before}
        return results
    finally:
        if pinned:
            os.sched_setaffinity(0, allowed)


# --- latency -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def feed_stub(pool: list[str], rng: random.Random) -> AsyncIterator[str]:
    """A minimal feed generator on 127.0.0.1: its did:web document names a `#bsky_fg` service,
    and `getFeedSkeleton` answers 50 random URIs of `pool`. Yields its DID."""
    port = free_port()
    did = f"did:web:127.0.0.1%3A{port}"
    endpoint = f"http://127.0.0.1:{port}"

    async def did_json(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": did,
                "service": [
                    {"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": endpoint}
                ],
            }
        )

    async def describe(request: web.Request) -> web.Response:
        return web.json_response({"did": did, "feeds": []})

    async def skeleton(request: web.Request) -> web.Response:
        page = rng.sample(pool, min(FEED_PAGE, len(pool)))
        return web.json_response({"feed": [{"post": uri} for uri in page]})

    app = web.Application()
    app.router.add_get("/.well-known/did.json", did_json)
    app.router.add_get("/xrpc/app.bsky.feed.describeFeedGenerator", describe)
    app.router.add_get("/xrpc/app.bsky.feed.getFeedSkeleton", skeleton)
    async with listening(app, "127.0.0.1", port):
        yield did


@dataclass
class Endpoint:
    name: str
    nsid: str
    params: Callable[[int], dict[str, str]]
    audience: str
    lxm: str
    items: str
    """The answer's list whose length is reported (`feed`, or `thread` for one thread)."""


async def drive(
    http: aiohttp.ClientSession,
    url: str,
    endpoint: Endpoint,
    viewers: list[Viewer],
    total: int,
    concurrency: int,
    appview_pid: int,
    max_seconds: float,
) -> dict[str, Any]:
    """`total` requests from `concurrency` closed-loop clients, or as many as are sent in
    `max_seconds`; latency from sending the request to having read the whole answer."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    sizes: list[int] = []
    counter = iter(range(total))

    async def client() -> None:
        for i in counter:
            if time.perf_counter() > stop_at:
                return
            viewer = viewers[i % len(viewers)]
            # A fresh token per request, as the viewer's PDS would sign when proxying.
            token = sign_service_jwt(
                viewer.key, viewer.did, endpoint.audience, endpoint.lxm, time.time()
            )
            start = time.perf_counter()
            async with http.get(
                f"{url}/xrpc/{endpoint.nsid}",
                params=endpoint.params(i),
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                body = await resp.read()
                status = resp.status
            latencies.append(time.perf_counter() - start)
            statuses[status] += 1
            if status != 200 and len(failures) < 5:
                failures.append(f"{status} {body[:200]!r}")
            elif status == 200 and i % 25 == 0:
                # Parsed only now and then: the clients share the CPU with the AppView.
                answer = json.loads(body)
                item = answer.get(endpoint.items)
                if isinstance(item, list):
                    sizes.append(len(item))
                elif isinstance(item, dict):
                    sizes.append(thread_size(item))

    cpu = cpu_seconds(appview_pid)
    own_cpu = time.process_time()
    began = time.perf_counter()
    stop_at = began + max_seconds
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "wanted": total,
        "requests": len(latencies),
        "ok": statuses[200],
        "statuses": {str(k): v for k, v in statuses.items()},
        "failures": failures,
        "p50_ms": percentile(ordered, 0.50) * 1000 if ordered else None,
        "p99_ms": percentile(ordered, 0.99) * 1000 if ordered else None,
        "max_ms": ordered[-1] * 1000 if ordered else None,
        "per_s": len(latencies) / wall if wall else 0.0,
        "seconds": wall,
        "appview_cpu": (cpu_seconds(appview_pid) - cpu) / wall if wall else 0.0,
        "client_cpu": (time.process_time() - own_cpu) / wall if wall else 0.0,
        "mean_items": sum(sizes) / len(sizes) if sizes else None,
    }


def thread_size(node: dict[str, Any]) -> int:
    """Posts in a threadViewPost below and including `node`."""
    replies = node.get("replies")
    return 1 + sum(thread_size(r) for r in replies if isinstance(r, dict)) if replies else 1


async def measure_latency(
    url: str,
    appview_pid: int,
    network: Network,
    viewers: list[Viewer],
    feed_uri: str,
    feed_did: str,
    requests: int,
    max_seconds: float,
) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/.well-known/did.json") as resp:
            appview_did = (await resp.json())["id"]
        targets = network.thread_targets or network.post_uris[:1]
        endpoints = [
            Endpoint(
                "getTimeline",
                "app.bsky.feed.getTimeline",
                lambda i: {"limit": "50"},
                appview_did,
                "app.bsky.feed.getTimeline",
                "feed",
            ),
            Endpoint(
                "getPostThread",
                "app.bsky.feed.getPostThread",
                lambda i: {"uri": targets[i % len(targets)]},
                appview_did,
                "app.bsky.feed.getPostThread",
                "thread",
            ),
            # A PDS signs getFeed for the feed generator; the AppView passes the token on.
            Endpoint(
                "getFeed",
                "app.bsky.feed.getFeed",
                lambda i: {"feed": feed_uri, "limit": "50"},
                feed_did,
                "app.bsky.feed.getFeedSkeleton",
                "feed",
            ),
        ]
        results: dict[str, Any] = {}
        for endpoint in endpoints:
            note(f"    {endpoint.name} ...")
            # One untimed request per viewer: DID documents resolved, caches warm.
            warm = await drive(
                http, url, endpoint, viewers, len(viewers), CONCURRENCY, appview_pid, SIDE_SECONDS
            )
            # One client alone: the time a request takes when nothing queues in front of it.
            alone = await drive(
                http, url, endpoint, viewers, SOLO_REQUESTS, 1, appview_pid, SIDE_SECONDS
            )
            loaded = await drive(
                http, url, endpoint, viewers, requests, CONCURRENCY, appview_pid, max_seconds
            )
            results[endpoint.name] = {**loaded, "warmup_statuses": warm["statuses"], "solo": alone}
        results["appview_rss_mib"] = rss_kib(appview_pid) / 1024
        return results


# --- one backend, start to end -----------------------------------------------------------------


async def timeline_plan(db: Database, viewer: str) -> list[str]:
    """The plan of the getTimeline handler's query, for its first (one-day) window."""
    top = "9999-12-31T23:59:59.999Z"
    args = (viewer, viewer, days_before(iso_now(), 1), top, top, "", 50)
    if db.dialect == "sqlite":
        rows = await db.fetch("EXPLAIN QUERY PLAN " + TIMELINE_QUERY, *args)
        return [str(r[3]) for r in rows]
    rows = await db.fetch("EXPLAIN " + TIMELINE_QUERY, *args)
    return [str(r[0]).strip() for r in rows]


@dataclass
class Shared:
    """What every backend's run uses."""

    network: Network
    viewers: list[Viewer]
    plc_url: str
    corpus: list[bytes]
    synthetic: list[bytes]
    requests: int
    max_seconds: float
    work: Path
    rng: random.Random


async def run_backend(backend: str, shared: Shared, database_url: str | None) -> dict[str, Any]:
    network = shared.network
    data_dir = shared.work / f"appview-{backend}"
    data_dir.mkdir(parents=True)
    sqlite_path = data_dir / "appview.sqlite"
    results: dict[str, Any] = {}
    at = format_millis(network.end_ms)
    async with feed_stub(network.feed_pool, shared.rng) as feed_did:
        note(f"  loading {network.stats['rows']:,} rows ...")
        async with open_index(database_url, data_dir, shared.plc_url) as db:
            started = time.perf_counter()
            results["load"] = await load_network(db, network)
            feed_uri = await add_feed_generator(db, shared.viewers[0].did, feed_did, at)
            if isinstance(db, SqliteDatabase):
                # The load went through the WAL: leave the file as a database in service has it.
                db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            results["load"]["total"] = time.perf_counter() - started
        # Fresh connections: the loading one still has the schema from before the index rebuild.
        async with open_index(database_url, data_dir, shared.plc_url) as db:
            results["timeline_plan"] = await timeline_plan(db, shared.viewers[0].did)
        if backend == "sqlite":
            results["database_mib"] = sqlite_path.stat().st_size / (1 << 20)
        args = ["--dev", "--plc-url", shared.plc_url]
        if database_url:
            args += ["--database-url", database_url]
        note("  starting strata appview ...")
        async with strata_service("appview", data_dir, *args) as (url, proc):
            results["latency"] = await measure_latency(
                url,
                proc.pid,
                network,
                shared.viewers,
                feed_uri,
                feed_did,
                shared.requests,
                shared.max_seconds,
            )
    note("  indexing (one core) ...")
    async with open_index(database_url, data_dir, shared.plc_url) as db:
        results["indexing"] = await measure_indexing(db, shared.corpus, shared.synthetic)
    return results


async def run_all(shared: Shared, backends: list[str]) -> dict[str, Any]:
    from tests.postgres import PostgresCluster
    from tests.services import running_plc

    results: dict[str, Any] = {}
    cluster: PostgresCluster | None = None
    (shared.work / "plc").mkdir()
    try:
        async with running_plc(shared.work / "plc") as plc:
            shared.plc_url = plc.url
            for viewer in shared.viewers:
                await plc.directory.submit(viewer.did, parse_operation(viewer.op))
            for backend in backends:
                note(f"{backend}:")
                url = None
                if backend == "postgres":
                    cluster = cluster or PostgresCluster()
                    url = cluster.new_database()
                results[backend] = await run_backend(backend, shared, url)
    finally:
        if cluster is not None:
            cluster.stop()
    return results


# --- the table ---------------------------------------------------------------------------------

TableRow = tuple[str, str, str, str, str]


def events_rows(label: str, run: dict[str, Any], judged: bool) -> list[TableRow]:
    events = sum(p["events"] for p in run["passes"])
    seconds = sum(p["seconds"] for p in run["passes"])
    cpu = sum(p["cpu"] for p in run["passes"])
    rate = events / seconds if seconds else 0.0
    verdict = ""
    if judged:
        verdict = f">= {TARGET_EVENTS:,.0f}/s: " + ("met" if rate >= TARGET_EVENTS else "NOT met")
    return [
        (
            label,
            f"{rate:,.0f} events/s ({events:,} in {seconds:.1f} s, CPU {cpu:.1f} s)",
            f"{TARGET_EVENTS:,.0f} events/s" if judged else "",
            f"{rate / TARGET_EVENTS:.2f}" if judged else "",
            verdict,
        )
    ]


def latency_rows(name: str, run: dict[str, Any]) -> list[TableRow]:
    p99, p50 = run["p99_ms"], run["p50_ms"]
    met = p99 is not None and p99 < TARGET_P99_MS and run["ok"] == run["requests"]
    solo = run["solo"]
    return [
        (
            f"{name} p99, {CONCURRENCY} clients",
            "n/a" if p99 is None else f"{p99:,.1f} ms",
            f"< {TARGET_P99_MS:.0f} ms",
            "" if p99 is None else f"{p99 / TARGET_P99_MS:.2f}",
            f"< {TARGET_P99_MS:.0f} ms: " + ("met" if met else "NOT met"),
        ),
        (
            f"   p50, {CONCURRENCY} clients",
            "n/a" if p50 is None else f"{p50:,.1f} ms",
            "(no p50 target)",
            "",
            "",
        ),
        (
            f"   throughput, {CONCURRENCY} clients; p50 with 1 client",
            f"{run['per_s']:,.0f}/s; {solo['p50_ms'] or 0:,.1f} ms",
            "",
            "",
            f"{run['ok']:,} of {run['requests']:,} answered 200"
            + (f" ({run['wanted']:,} wanted: time cap)" if run["requests"] < run["wanted"] else ""),
        ),
    ]


def build_rows(
    results: dict[str, Any], corpus_frames: int, synthetic: dict[str, int]
) -> list[TableRow]:
    rows: list[TableRow] = []
    for backend in ("sqlite", "postgres"):
        run = results.get(backend)
        if not run:
            continue
        name = "SQLite" if backend == "sqlite" else "Postgres"
        indexing = run["indexing"]
        if "corpus_first" in indexing:
            rows += events_rows(
                f"{name}: indexing, recorded frames, first pass ({corpus_frames:,} frames), 1 core",
                indexing["corpus_first"],
                True,
            )
            passes = len(indexing["corpus_replay"]["passes"])
            rows += events_rows(
                f"   the same frames replayed x{passes} (already indexed: rev check only)",
                indexing["corpus_replay"],
                False,
            )
        if "synthetic" in indexing:
            rows += events_rows(
                f"{name}: indexing, synthetic stream ({synthetic['commits']:,} new commits by "
                f"{synthetic['accounts']:,} accounts), 1 core",
                indexing["synthetic"],
                True,
            )
        for endpoint in ("getTimeline", "getPostThread", "getFeed"):
            rows += latency_rows(f"{name}: {endpoint}", run["latency"][endpoint])
    return rows


def print_table(rows: list[TableRow]) -> None:
    header = ("measure", "strata", "target (the issue's)", "ratio", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print("(ratio: strata / target; no official AppView can run here, so the targets stand in)")


def print_notes(results: dict[str, Any], network: Network) -> None:
    s = network.stats
    print(
        f"network: {s['accounts']:,} accounts, {s['posts']:,} posts ({s['replies']:,} replies in "
        f"{s['thread_roots']:,} threads), {s['follows']:,} follows (most followers"
        f" {s['max_followers']:,}, median {s['median_followers']:,}), {s['likes']:,} likes,"
        f" {s['reposts']:,} reposts, {s['notifications']:,} notifications; the most prolific"
        f" account has {s['max_posts_by_one_account']:,} posts; viewers follow"
        f" {s['viewer_follows_mean']:.0f} accounts each, whose feed items (what getTimeline"
        f" sorts) number {s['timeline_candidates_mean']:,.0f} on average, at most"
        f" {s['timeline_candidates_max']:,}; getPostThread roots have"
        f" {network.thread_target_replies:.1f} replies on average; generated in"
        f" {network.seconds:.0f} s"
    )
    print(
        "getFeed: the feed generator is a stub in the bench process (50 random URIs of the"
        f" {FEED_POOL:,} most recent posts), not `strata feedgen`; its time is in the figures."
    )
    print(
        "latency: the AppView is its own process; the 50 clients, the stub feed generator and the"
        " PLC directory are in the bench process; Postgres has its own processes; all share 2"
        " cores. Indexing: in the bench process, pinned to one core, no network (resolver and"
        " session None)."
    )
    for backend in ("sqlite", "postgres"):
        run = results.get(backend)
        if not run:
            continue
        load = ", ".join(f"{k} {v:.1f} s" for k, v in run["load"].items())
        size = f"; file {run['database_mib']:,.0f} MiB" if "database_mib" in run else ""
        print(f"{backend}: load {load}{size}")
        print(f"{backend}: getTimeline plan: {' / '.join(run['timeline_plan'])[:400]}")
        latency = run["latency"]
        cpu = ", ".join(
            f"{e} {latency[e]['appview_cpu']:.0%}/{latency[e]['client_cpu']:.0%}"
            for e in ("getTimeline", "getPostThread", "getFeed")
        )
        items = ", ".join(
            f"{e} {latency[e]['mean_items'] or 0:.1f}"
            for e in ("getTimeline", "getPostThread", "getFeed")
        )
        print(
            f"{backend}: CPU of a core, AppView/bench client: {cpu}; AppView RSS"
            f" {latency['appview_rss_mib']:,.0f} MiB; mean items per answer (sampled): {items}"
        )
        for e in ("getTimeline", "getPostThread", "getFeed"):
            r = latency[e]
            if r["ok"] != r["requests"] or r["warmup_statuses"] != {"200": VIEWERS}:
                print(f"{backend}: {e} statuses {r['statuses']} (warm-up {r['warmup_statuses']})")
            for failure in r["failures"]:
                print(f"{backend}: {e} failure: {failure}")
        for part, run_ in run["indexing"].items():
            problems = {
                k: run_[k] for k in ("errors", "log_warnings", "tasks_pending_at_end") if run_[k]
            }
            print(
                f"{backend}: indexing {part}: records added {run_.get('records_added', 'n/a')},"
                f" invalid records {run_['invalid_records']:.0f}, accounts waiting for a"
                f" repository fetch {run_['accounts_waiting_for_fetch']} (holding"
                f" {run_['commits_waiting_for_backfill']} commits)"
                + (f"; {problems}" if problems else "")
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--follows", type=int, default=500_000)
    parser.add_argument("--likes", type=int, default=None, help="default: posts / 4")
    parser.add_argument("--reposts", type=int, default=None, help="default: posts / 20")
    parser.add_argument("--requests", type=int, default=2_000, help="per endpoint and backend")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=45.0,
        help="stop sending an endpoint's requests after this long (the run stays bounded)",
    )
    parser.add_argument("--synthetic", type=int, default=50_000, help="synthetic commits")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--corpus", type=Path, default=None, help="the recorded corpus folder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    if args.accounts < 2 * VIEWERS:
        parser.error(f"--accounts must be at least {2 * VIEWERS}")
    sizes = Sizes(
        accounts=args.accounts,
        posts=args.posts,
        follows=args.follows,
        likes=args.posts // 4 if args.likes is None else args.likes,
        reposts=args.posts // 20 if args.reposts is None else args.reposts,
        requests=args.requests,
        synthetic=args.synthetic,
        seed=args.seed,
    )
    began = time.perf_counter()
    from tests.corpus import corpus_dir, raw_frames

    corpus = args.corpus or corpus_dir() or ROOT.parent / "shared" / "corpus"
    corpus_frames: list[bytes] = []
    if (corpus / "official-firehose.frames").exists():
        corpus_frames = list(raw_frames(corpus))
    else:
        note(f"no corpus at {corpus}: the recorded-frames measure is skipped (--corpus DIR)")
    rng = random.Random(args.seed)
    note("generating the network ...")
    viewers = new_viewers(VIEWERS)
    network = generate_network(sizes, viewers, rng)
    note(f"  {network.stats['rows']:,} rows in {network.seconds:.0f} s; synthetic commits ...")
    started = time.perf_counter()
    synthetic, synthetic_accounts = synthetic_frames(network, sizes.synthetic, rng)
    note(f"  {len(synthetic):,} commits in {time.perf_counter() - started:.0f} s")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="strata-bench-appview-") as tmp:
        shared = Shared(
            network,
            viewers,
            "",
            corpus_frames,
            synthetic,
            sizes.requests,
            args.max_seconds,
            Path(tmp),
            rng,
        )
        results = asyncio.run(run_all(shared, backends))
    seconds = time.perf_counter() - began

    print()
    print_table(
        build_rows(
            results,
            len(corpus_frames),
            {"commits": len(synthetic), "accounts": synthetic_accounts},
        )
    )
    print_notes(results, network)
    print(f"total {seconds:.0f} s")
    if args.json:
        print()
        document = {
            "sizes": asdict(sizes),
            "network": network.stats,
            "results": results,
            "seconds": seconds,
        }
        print(json.dumps(document, indent=2, default=str))


if __name__ == "__main__":
    main()
