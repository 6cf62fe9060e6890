"""AppView benchmark: read latency under concurrency, with the firehose indexed meanwhile, on
SQLite and Postgres, beside an earlier revision of the AppView measured in the same run.

The issue's measure: on 1,000,000 posts by 100,000 accounts with a skewed follow graph,
getTimeline, getPostThread, getAuthorFeed and searchPosts p50 and p99 with 1 and with 50
concurrent clients, and the indexing rate while those reads run, on SQLite and on Postgres;
goals: getTimeline p99 < 100 ms at 50 clients on both engines, and >= 2,000 events/s indexed
while serving. No official AppView can run here: the peer is the AppView of `--baseline REV`
(a checkout of that revision, run the same way on a copy of the same index), and the ratio is
baseline / strata for latencies and strata / baseline for rates (above 1: strata is better).

1. The network is generated once in this process (follows go to popular accounts more often,
   prolific accounts post more; ~10% of posts are replies gathered in threads; likes and
   reposts on top) and bulk-loaded into tables of the index's first schema version, as an
   earlier release would have written them (the `record` table's JSON included), secondary
   indexes rebuilt after the load, Postgres ANALYZEd. The baseline gets a copy of that index;
   the current code then migrates its own (the migration's backfill of counts and search is
   timed).
2. Each variant runs `strata appview` as its own process, reading a relay that this script
   serves: prebuilt `#commit` frames of new accounts (profiles, posts, replies, likes,
   reposts, follows, deletes; signed commits with CAR blocks, built with the real repository
   code and renamed per round so every round is new accounts).
   a) Indexing alone: the relay sends as fast as the AppView reads, for `--index-seconds`.
   b) Reads, per endpoint: one untimed request per viewer, then 1 client and then 50 clients
      (closed loop: each sends its next request when the last is answered), `--requests` or
      `--max-seconds` each. The 50 viewers are did:plc identities in a `strata plc` served by
      this process; each request carries a fresh service token (the AppView checks a
      signature every time). Meanwhile the relay sends `--firehose-rate` events per second
      (2,000): the events indexed per second over each run and the backlog at its end are
      reported. Answers other than 200 (503 when the AppView sheds load) are counted apart
      and included in the latencies.
   c) On Postgres, getTimeline at 50 clients again with `strata appview --workers 1` and with
      `--workers 2`, each on its own copy of the index as migrated (one untimed request per
      viewer first), with the firehose paused: what a second worker adds to reads. On a
      2-core machine the workers compete for the same two cores with the clients and Postgres.
   Client, relay, directory, AppView and Postgres share the machine's cores.

Run from the repository root: `python bench/appview.py [--baseline REV] [--backend
sqlite|postgres|both] [--accounts N] [--posts N] [--follows N] [--requests N] [--max-seconds S]
[--json]`; the defaults are the issue's sizes (about 25 minutes on 2 cores with a baseline);
`--accounts 10000 --posts 100000 --follows 200000 --max-seconds 10` is a quick run. Postgres
is a throwaway cluster (`tests/postgres.py`, initdb defaults). Progress goes to stderr; the
table, and with `--json` a JSON document after it, to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import string
import subprocess
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

from harness import (
    Firehose,
    free_port,
    metric_sum,
    metrics,
    note,
    percentile,
    rss_kib,
    strata_service,
)
from strata.appview.schema import MIGRATIONS
from strata.core import cbor
from strata.core.crypto import K256Keypair
from strata.core.frames import message_frame
from strata.core.jwt import sign_service_jwt
from strata.core.plc import parse_operation
from strata.core.repo import Repository, Write
from strata.core.syntax import tid_from_parts
from strata.core.syntax.dates import format_millis
from strata.database import Database, PostgresDatabase, SqliteDatabase, migrate, open_database
from strata.pds.sequencer import commit_body, iso_now
from strata.serve import listening

ROOT = Path(__file__).resolve().parent.parent

PROFILE = "app.bsky.actor.profile"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"
PDS_URL = "http://localhost:2583"
"""The PDS the generated accounts' actor rows name (only blob URLs would use it)."""

VIEWERS = 50
CONCURRENCY = 50
SOLO_SECONDS = 10.0
"""The one-client run of each endpoint lasts this long."""
VIEWER_FOLLOWS = 150
SPAN_MS = 30 * 86_400_000
"""The generated network's posts are spread over the 30 days before the run."""
REPLY_SHARE = 0.10
THREAD_ROOT_SHARE = 0.01
"""Top-level posts that draw replies; each reply goes to one of the 200 most recent."""
NESTED_REPLY_SHARE = 0.3
FOLLOW_SKEW = 0.8
POST_SKEW = 0.6
"""Zipf exponents by account rank: how many followers, and how many posts."""
PROLIFIC = 200
"""getAuthorFeed asks for the feeds of the accounts with the most posts."""
SYNTHETIC_ACCOUNTS = 400
SYNTHETIC_COMMITS = 50
WORKER_COUNTS = (1, 2)
"""`--workers` of the AppViews whose getTimeline is compared on Postgres."""
"""The firehose's new accounts per round, and the commits each writes in it."""
TARGET_P99_MS = 100.0
TARGET_EVENTS = 2_000.0
WORDS = (
    "the", "a", "network", "post", "today", "protocol", "server", "feed", "timeline", "reply",
    "thread", "like", "follow", "account", "photo", "morning", "coffee", "code", "python",
    "sqlite", "postgres", "relay", "index", "query", "latency", "cache", "hello", "world",
    "small", "big", "fast", "slow", "new", "old", "good", "great", "weekend", "music", "book",
    "film", "garden", "rain", "sun",
)  # fmt: skip
SEARCHES = (
    "coffee", "garden rain", "python code", "weekend music", "latency", "hello world",
    "protocol server", "film", "big cache", "morning sun",
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
"""The tables of the first schema version the network fills."""

Row = tuple[Any, ...]


@dataclass
class Sizes:
    accounts: int
    posts: int
    follows: int
    likes: int
    reposts: int
    requests: int
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
    prolific: list[str]
    """getAuthorFeed subjects: the accounts with the most posts."""
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
        prolific=[dids[a] for a, _ in Counter(authors).most_common(PROLIFIC)],
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


# --- the firehose ------------------------------------------------------------------------------


@dataclass
class Commits:
    """One round of the synthetic firehose: `#commit` bodies of new accounts (without seq)."""

    accounts: list[str]
    bodies: list[dict[str, Any]]


def synthetic_commits(network: Network, rng: random.Random) -> Commits:
    """`SYNTHETIC_COMMITS` commits of each of `SYNTHETIC_ACCOUNTS` new accounts, as their PDS
    would emit them: a first commit creating the profile, then posts (a fifth of them replies
    to the network's threads), likes, reposts and follows of the network, and a few deletes;
    interleaved account by account, each account's commits in order."""
    count = SYNTHETIC_ACCOUNTS * SYNTHETIC_COMMITS
    keys = [K256Keypair.generate() for _ in range(SYNTHETIC_ACCOUNTS)]
    dids = [fake_did(rng) for _ in range(SYNTHETIC_ACCOUNTS)]
    repos: list[Repository | None] = [None] * SYNTHETIC_ACCOUNTS
    deletable: list[list[str]] = [[] for _ in range(SYNTHETIC_ACCOUNTS)]
    bodies: list[dict[str, Any]] = []
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
        if roll < 0.55:
            record: dict[str, Any] = {
                "$type": POST,
                "text": " ".join(rng.choices(WORDS, k=rng.randrange(4, 20))),
                "createdAt": now,
                "langs": ["en"],
            }
            if network.thread_roots and rng.random() < 0.2:
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
        a = x % SYNTHETIC_ACCOUNTS
        repo = repos[a]
        if repo is None:
            profile = {"$type": PROFILE, "displayName": f"New {a}", "createdAt": iso_now()}
            result = Repository.create(
                {}, dids[a], keys[a], [Write("create", PROFILE, "self", profile)]
            )
        else:
            result = repo.apply_writes([write(a)], keys[a])
        repos[a] = result.repo
        bodies.append(commit_body(dids[a], result, [], iso_now()))
    return Commits(dids, bodies)


def firehose_frames(commits: Commits, count: int, rng: random.Random) -> list[bytes]:
    """`count` frames: the round again and again, each time by accounts of new DIDs (the
    AppView trusts its relay for signatures, so a renamed commit is a new account's)."""
    frames: list[bytes] = []
    while len(frames) < count:
        renamed = {did: fake_did(rng) for did in commits.accounts}
        for body in commits.bodies[: count - len(frames)]:
            seq = len(frames) + 1
            frames.append(
                message_frame("#commit", {**body, "repo": renamed[body["repo"]], "seq": seq})
            )
    return frames


class Relay:
    """A relay for one AppView: the frames, published at a rate or as fast as they are read."""

    def __init__(self, frames: list[bytes]) -> None:
        self.firehose = Firehose()
        for frame in frames:
            self.firehose.add(frame)
        self.rate: float | None = 0.0
        """Events per second; None: as fast as the AppView reads them."""

    async def run(self) -> None:
        """Publish at the current rate (every 10 ms) until cancelled."""
        firehose = self.firehose
        owed = 0.0
        last = time.monotonic()
        while firehose.published < firehose.seq:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            if self.rate is None:
                # Keep a few batches buffered ahead of the reader, never more.
                if firehose.buffered() < 1 << 20:
                    firehose.publish(500)
            else:
                owed += self.rate * (now - last)
                firehose.publish(int(owed))
                owed -= int(owed)
            last = now

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", self.firehose.subscribe)
        return app


async def indexed(http: aiohttp.ClientSession, url: str) -> float:
    """Events the AppView has indexed so far."""
    return metric_sum(await metrics(http, url), "strata_appview_events_total")


# --- reads -------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    nsid: str
    params: Callable[[int], dict[str, str]]
    items: str
    """The answer's list whose length is reported (`feed`, `posts`, or `thread`)."""


def endpoints(network: Network) -> list[Endpoint]:
    targets = network.thread_targets or network.post_uris[:1]
    return [
        Endpoint("getTimeline", "app.bsky.feed.getTimeline", lambda i: {"limit": "50"}, "feed"),
        Endpoint(
            "getPostThread",
            "app.bsky.feed.getPostThread",
            lambda i: {"uri": targets[i % len(targets)]},
            "thread",
        ),
        Endpoint(
            "getAuthorFeed",
            "app.bsky.feed.getAuthorFeed",
            lambda i: {"actor": network.prolific[i % len(network.prolific)], "limit": "50"},
            "feed",
        ),
        Endpoint(
            "searchPosts",
            "app.bsky.feed.searchPosts",
            lambda i: {"q": SEARCHES[i % len(SEARCHES)], "limit": "25"},
            "posts",
        ),
    ]


async def drive(
    http: aiohttp.ClientSession,
    url: str,
    audience: str,
    endpoint: Endpoint,
    viewers: list[Viewer],
    total: int,
    concurrency: int,
    max_seconds: float,
) -> dict[str, Any]:
    """`total` requests from `concurrency` closed-loop clients, or as many as are sent in
    `max_seconds`; latency from sending the request to having read the whole answer."""
    latencies: list[float] = []
    answered: list[float] = []
    """Latencies of the answers with 200 (a 503 from admission control comes back fast)."""
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
            token = sign_service_jwt(viewer.key, viewer.did, audience, endpoint.nsid, time.time())
            start = time.perf_counter()
            async with http.get(
                f"{url}/xrpc/{endpoint.nsid}",
                params=endpoint.params(i),
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                body = await resp.read()
                status = resp.status
            latencies.append(time.perf_counter() - start)
            if status == 200:
                answered.append(latencies[-1])
            statuses[status] += 1
            if status != 200 and len(failures) < 3:
                failures.append(f"{status} {body[:160]!r}")
            elif status == 200 and i % 25 == 0:
                # Parsed only now and then: the clients share the CPU with the AppView.
                item = json.loads(body).get(endpoint.items)
                if isinstance(item, list):
                    sizes.append(len(item))
                elif isinstance(item, dict):
                    sizes.append(thread_size(item))

    began = time.perf_counter()
    stop_at = began + max_seconds
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    ordered = sorted(latencies)
    ok = sorted(answered)
    return {
        "requests": len(latencies),
        "ok": statuses[200],
        "statuses": {str(k): v for k, v in statuses.items()},
        "failures": failures,
        "p50_ms": percentile(ordered, 0.50) * 1000 if ordered else None,
        "p99_ms": percentile(ordered, 0.99) * 1000 if ordered else None,
        "ok_p50_ms": percentile(ok, 0.50) * 1000 if ok else None,
        "ok_p99_ms": percentile(ok, 0.99) * 1000 if ok else None,
        "per_s": len(latencies) / wall if wall else 0.0,
        "seconds": wall,
        "mean_items": sum(sizes) / len(sizes) if sizes else None,
    }


def thread_size(node: dict[str, Any]) -> int:
    """Posts in a threadViewPost below and including `node`."""
    replies = node.get("replies")
    return 1 + sum(thread_size(r) for r in replies if isinstance(r, dict)) if replies else 1


async def while_indexing(
    http: aiohttp.ClientSession, url: str, relay: Relay, reads: Any
) -> dict[str, Any]:
    """Run `reads` (a coroutine) and measure the indexing meanwhile."""
    before, sent, began = await indexed(http, url), relay.firehose.published, time.perf_counter()
    result: dict[str, Any] = await reads
    seconds = time.perf_counter() - began
    done = await indexed(http, url)
    result["indexed_per_s"] = (done - before) / seconds
    result["sent_per_s"] = (relay.firehose.published - sent) / seconds
    result["backlog"] = relay.firehose.published - done
    return result


# --- one AppView, start to end -----------------------------------------------------------------


@dataclass
class Shared:
    """What every run uses."""

    network: Network
    viewers: list[Viewer]
    frames: list[bytes]
    plc_url: str
    requests: int
    max_seconds: float
    index_seconds: float
    firehose_rate: float
    work: Path


async def measure(
    shared: Shared, data_dir: Path, database_url: str | None, source: Path | None
) -> dict[str, Any]:
    """Start an AppView (from `source` for the baseline) on its index, reading a relay of this
    script; indexing alone, then reads of each endpoint while the firehose runs."""
    relay = Relay(shared.frames)
    port = free_port()
    args = ["--dev", "--plc-url", shared.plc_url, "--relay", f"http://127.0.0.1:{port}"]
    if database_url:
        args += ["--database-url", database_url]
    results: dict[str, Any] = {}
    async with (
        listening(relay.app(), "127.0.0.1", port),
        strata_service("appview", data_dir, *args, source=source) as (url, proc),
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{url}/.well-known/did.json") as resp:
            audience = (await resp.json())["id"]
        pacing = asyncio.create_task(relay.run())
        try:
            note("    indexing alone ...")
            relay.rate = None
            alone = await while_indexing(http, url, relay, asyncio.sleep(shared.index_seconds, {}))
            results["indexing_alone"] = alone
            relay.rate = shared.firehose_rate
            for endpoint in endpoints(shared.network):
                note(f"    {endpoint.name} ...")
                # One untimed request per viewer: DID documents resolved, caches warm.
                await drive(http, url, audience, endpoint, shared.viewers, VIEWERS, 10, 30.0)
                runs = {}
                for clients, seconds in ((1, SOLO_SECONDS), (CONCURRENCY, shared.max_seconds)):
                    runs[str(clients)] = await while_indexing(
                        http, url, relay,
                        drive(http, url, audience, endpoint, shared.viewers, shared.requests,
                              clients, seconds),
                    )  # fmt: skip
                results[endpoint.name] = runs
            results["rss_mib"] = rss_kib(proc.pid) / 1024
        finally:
            pacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacing
    return results


async def measure_workers(
    shared: Shared, data_dir: Path, database_url: str, workers: int
) -> dict[str, Any]:
    """getTimeline at `CONCURRENCY` clients from `strata appview --workers N` (one untimed
    request per viewer first), the firehose paused."""
    relay = Relay(shared.frames)
    port = free_port()
    args = ["--dev", "--plc-url", shared.plc_url, "--relay", f"http://127.0.0.1:{port}"]
    args += ["--database-url", database_url, "--workers", str(workers)]
    timeline = endpoints(shared.network)[0]
    async with (
        listening(relay.app(), "127.0.0.1", port),
        strata_service("appview", data_dir, *args) as (url, _proc),
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{url}/.well-known/did.json") as resp:
            audience = (await resp.json())["id"]
        await drive(http, url, audience, timeline, shared.viewers, VIEWERS, 10, 30.0)
        return await drive(
            http, url, audience, timeline, shared.viewers, shared.requests, CONCURRENCY,
            shared.max_seconds,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def opened(database_url: str | None, path: Path) -> AsyncIterator[Database]:
    db = await open_database(database_url, path)
    try:
        yield db
    finally:
        await db.close()


async def run_backend(
    backend: str, shared: Shared, database_url: str | None, baseline: Path | None, cluster: Any
) -> dict[str, Any]:
    """Load the index (first schema version), copy it for the baseline, migrate ours, measure
    both."""
    network = shared.network
    ours_dir, base_dir = shared.work / f"{backend}-strata", shared.work / f"{backend}-baseline"
    ours_dir.mkdir()
    sqlite_path = ours_dir / "appview.sqlite"
    results: dict[str, Any] = {}
    note(f"  loading {network.stats['rows']:,} rows ...")
    async with opened(database_url, sqlite_path) as db:
        await migrate(db, MIGRATIONS[:1], "appview")
        results["load"] = await load_network(db, network)
        if isinstance(db, SqliteDatabase):
            db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    base_url = None
    if baseline is not None:
        if database_url is None:
            base_dir.mkdir()
            shutil.copy(sqlite_path, base_dir / "appview.sqlite")
        else:
            base_url = cluster.new_database(template=database_url)
    note("  migrating to the current schema ...")
    started = time.perf_counter()
    async with opened(database_url, sqlite_path) as db:
        results["schema_version"] = await migrate(db, MIGRATIONS, "appview")
    results["load"]["migration"] = time.perf_counter() - started
    if database_url is None:
        results["database_mib"] = sqlite_path.stat().st_size / (1 << 20)
    # Each worker count reads its own copy of the index as migrated, as the first run did.
    copies = {}
    if database_url is not None:
        copies = {n: cluster.new_database(template=database_url) for n in WORKER_COUNTS}
    note("  strata appview:")
    results["strata"] = await measure(shared, ours_dir, database_url, None)
    if copies:
        results["workers"] = {}
        for n, url in copies.items():
            note(f"  strata appview --workers {n}: getTimeline ...")
            workers_dir = shared.work / f"{backend}-workers-{n}"
            results["workers"][str(n)] = await measure_workers(shared, workers_dir, url, n)
    if baseline is not None:
        note("  baseline appview:")
        results["baseline"] = await measure(shared, base_dir, base_url, baseline)
    return results


@contextlib.contextmanager
def checkout(rev: str) -> Any:
    """The `src` folder of a checkout of `rev`, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="strata-baseline-"))
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev],
            check=True, capture_output=True,
        )  # fmt: skip
        yield folder / "src"
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


async def run_all(shared: Shared, backends: list[str], baseline: Path | None) -> dict[str, Any]:
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
                results[backend] = await run_backend(backend, shared, url, baseline, cluster)
    finally:
        if cluster is not None:
            cluster.stop()
    return results


# --- the table ---------------------------------------------------------------------------------

TableRow = tuple[str, ...]


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def ratio(ours: float | None, theirs: float | None, lower_is_better: bool) -> str:
    if not ours or not theirs:
        return ""
    return f"{(theirs / ours if lower_is_better else ours / theirs):.2f}"


def read_rows(name: str, ours: dict[str, Any], theirs: dict[str, Any] | None) -> list[TableRow]:
    rows: list[TableRow] = []
    for clients in ("1", str(CONCURRENCY)):
        run, base = ours[clients], (theirs or {}).get(clients)
        for q in ("p50", "p99"):
            key = f"{q}_ms"
            verdict = ""
            if name.endswith("getTimeline") and clients == str(CONCURRENCY) and q == "p99":
                met = (
                    run[key] is not None
                    and run[key] < TARGET_P99_MS
                    and run["ok"] == run["requests"]
                )
                verdict = f"< {TARGET_P99_MS:.0f} ms, all 200: " + ("met" if met else "NOT met")
            rows.append((
                f"{name} {q}, {clients} client{'s' if clients != '1' else ''}",
                ms(run[key]), ms(base[key]) if base else "n/a",
                ratio(run[key], base[key] if base else None, True), verdict,
            ))  # fmt: skip
        rows.append((
            "   answered 200 / sent; requests/s",
            f"{run['ok']:,}/{run['requests']:,}; {run['per_s']:,.0f}/s",
            f"{base['ok']:,}/{base['requests']:,}; {base['per_s']:,.0f}/s" if base else "n/a",
            "", "",
        ))  # fmt: skip
    run, base = ours[str(CONCURRENCY)], (theirs or {}).get(str(CONCURRENCY))
    met = run["indexed_per_s"] >= TARGET_EVENTS * 0.95
    rows.append((
        f"   indexed meanwhile ({CONCURRENCY} clients); backlog at end",
        f"{run['indexed_per_s']:,.0f} ev/s; {run['backlog']:,.0f}",
        f"{base['indexed_per_s']:,.0f} ev/s; {base['backlog']:,.0f}" if base else "n/a",
        ratio(run["indexed_per_s"], base["indexed_per_s"] if base else None, False),
        f"{TARGET_EVENTS:,.0f} ev/s sent: " + ("kept up" if met else "fell behind"),
    ))  # fmt: skip
    return rows


def build_rows(results: dict[str, Any]) -> list[TableRow]:
    rows: list[TableRow] = []
    for backend in ("sqlite", "postgres"):
        if backend not in results:
            continue
        name = "SQLite" if backend == "sqlite" else "Postgres"
        ours, theirs = results[backend]["strata"], results[backend].get("baseline")
        alone = ours["indexing_alone"]["indexed_per_s"]
        base_alone = (theirs or {}).get("indexing_alone", {}).get("indexed_per_s")
        rows.append((
            f"{name}: indexing alone (relay unthrottled)",
            f"{alone:,.0f} ev/s",
            f"{base_alone:,.0f} ev/s" if base_alone is not None else "n/a",
            ratio(alone, base_alone, False),
            "",
        ))  # fmt: skip
        for endpoint in ("getTimeline", "getPostThread", "getAuthorFeed", "searchPosts"):
            rows += read_rows(f"{name}: {endpoint}", ours[endpoint], (theirs or {}).get(endpoint))
        rows += worker_rows(name, results[backend].get("workers", {}))
    return rows


def worker_rows(name: str, runs: dict[str, Any]) -> list[TableRow]:
    """getTimeline at `CONCURRENCY` clients by `--workers`, each beside one worker's."""
    rows: list[TableRow] = []
    single = runs.get("1")
    for workers, run in runs.items():
        for q in ("p50", "p99"):
            key = f"{q}_ms"
            versus = ""
            if single is not None and workers != "1" and run[key] and single[key]:
                versus = f"1 worker / {workers} workers: {single[key] / run[key]:.2f}"
            rows.append((
                f"{name}: getTimeline {q}, {CONCURRENCY} clients, --workers {workers}, "
                "firehose paused",
                ms(run[key]), "n/a", "", versus,
            ))  # fmt: skip
        rows.append((
            "   answered 200 / sent; requests/s; p50, p99 of the 200s",
            f"{run['ok']:,}/{run['requests']:,}; {run['per_s']:,.0f}/s; "
            f"{ms(run['ok_p50_ms'])}, {ms(run['ok_p99_ms'])}",
            "n/a", "", "",
        ))  # fmt: skip
    return rows


def print_table(rows: list[TableRow], baseline: str | None) -> None:
    header = ("measure", "strata", f"baseline {baseline or '(none)'}", "ratio", "goal")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print("(ratio: baseline / strata for latencies, strata / baseline for rates; above 1: strata")
    print(" is better)")
    if any("--workers" in row[0] for row in rows):
        print(f"(--workers: on this machine's {os.cpu_count()} cores, shared by the workers, the")
        print(" clients, the relay and Postgres)")


def print_notes(results: dict[str, Any], network: Network, shared: Shared) -> None:
    s = network.stats
    print(
        f"network: {s['accounts']:,} accounts, {s['posts']:,} posts ({s['replies']:,} replies in "
        f"{s['thread_roots']:,} threads), {s['follows']:,} follows (most followers"
        f" {s['max_followers']:,}, median {s['median_followers']:,}), {s['likes']:,} likes,"
        f" {s['reposts']:,} reposts; viewers follow {s['viewer_follows_mean']:.0f} accounts,"
        f" whose feed items number {s['timeline_candidates_mean']:,.0f} on average; thread"
        f" roots have {network.thread_target_replies:.1f} replies on average; generated in"
        f" {network.seconds:.0f} s"
    )
    print(
        f"firehose: {SYNTHETIC_ACCOUNTS} new accounts a round, {SYNTHETIC_COMMITS} commits each,"
        f" at {shared.firehose_rate:,.0f} events/s during reads; indexing alone for"
        f" {shared.index_seconds:.0f} s"
    )
    for backend, run in results.items():
        load = ", ".join(f"{k} {v:.1f} s" for k, v in run["load"].items())
        size = f"; file {run['database_mib']:,.0f} MiB" if "database_mib" in run else ""
        print(f"{backend}: load {load} (schema version {run['schema_version']}){size}")
        for variant in ("strata", "baseline"):
            if variant not in run:
                continue
            measured = run[variant]
            items = ", ".join(
                f"{e} {measured[e][str(CONCURRENCY)]['mean_items'] or 0:.1f}"
                for e in ("getTimeline", "getPostThread", "getAuthorFeed", "searchPosts")
            )
            print(f"{backend} {variant}: RSS {measured['rss_mib']:,.0f} MiB; mean items: {items}")
            for e in ("getTimeline", "getPostThread", "getAuthorFeed", "searchPosts"):
                for clients, r in measured[e].items():
                    if r["ok"] != r["requests"]:
                        failure = r["failures"][:1]
                        print(f"{backend} {variant}: {e} x{clients} {r['statuses']}: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--follows", type=int, default=2_000_000)
    parser.add_argument("--likes", type=int, default=None, help="default: posts / 4")
    parser.add_argument("--reposts", type=int, default=None, help="default: posts / 20")
    parser.add_argument("--requests", type=int, default=20_000, help="per run at most")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="a 50-client run's length")
    parser.add_argument("--index-seconds", type=float, default=15.0)
    parser.add_argument("--firehose-rate", type=float, default=TARGET_EVENTS)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--baseline", metavar="REV", help="an earlier revision to measure too")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    if args.accounts < 2 * VIEWER_FOLLOWS:
        parser.error(f"--accounts must be at least {2 * VIEWER_FOLLOWS}")
    sizes = Sizes(
        accounts=args.accounts,
        posts=args.posts,
        follows=args.follows,
        likes=args.posts // 4 if args.likes is None else args.likes,
        reposts=args.posts // 20 if args.reposts is None else args.reposts,
        requests=args.requests,
        seed=args.seed,
    )
    began = time.perf_counter()
    rng = random.Random(args.seed)
    note("generating the network ...")
    viewers = new_viewers(VIEWERS)
    network = generate_network(sizes, viewers, rng)
    note(f"  {network.stats['rows']:,} rows in {network.seconds:.0f} s; the firehose ...")
    commits = synthetic_commits(network, rng)
    paced = 4 * (SOLO_SECONDS + args.max_seconds + 5)
    needed = int(args.firehose_rate * paced + 10_000 * args.index_seconds)
    frames = firehose_frames(commits, needed, rng)
    note(f"  {len(frames):,} frames")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="strata-bench-appview-") as tmp:
        shared = Shared(
            network, viewers, frames, "", args.requests, args.max_seconds, args.index_seconds,
            args.firehose_rate, Path(tmp),
        )  # fmt: skip
        with checkout(args.baseline) if args.baseline else contextlib.nullcontext() as source:
            results = asyncio.run(run_all(shared, backends, source))
    seconds = time.perf_counter() - began
    print()
    print_table(build_rows(results), args.baseline)
    print_notes(results, network, shared)
    print(f"total {seconds:.0f} s")
    if args.json:
        print()
        document = {"sizes": asdict(sizes), "network": network.stats, "results": results}
        print(json.dumps(document, indent=2, default=str))


if __name__ == "__main__":
    main()
