"""Turning firehose events into the feed generator's rows (see `strata.feedgen.schema`).

A batch from the relay subscriber is written in one transaction together with that relay's
cursor, so a crash never records a cursor past events that were not written. The records come
from the commit's own blocks; the relay has already verified the commit, so only each record's
shape is checked here (against its lexicon), and a bad record is skipped and counted.

A commit whose `rev` is not newer than the last one seen for its repository is a replay (after
a failover, a relay's stream overlaps what another one delivered) and is skipped, so that a
post deleted on one relay is not brought back by another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from strata.appview.records import ref_uri, sort_at
from strata.core import cbor
from strata.core.car import CarReader
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.core.frames import Frame
from strata.core.lexicon import Catalog
from strata.core.syntax.dates import format_millis, parse_millis
from strata.database import Database, Executor, placeholders
from strata.feedgen.schema import TABLES
from strata.net.logs import log_event
from strata.resilience import Backoff

log = logging.getLogger("strata.feedgen.indexer")

EVENTS = Counter(
    "strata_feedgen_events_total", "Firehose events the feed generator handled", ["type"]
)
RECORDS = Counter(
    "strata_feedgen_records_total",
    "Records the feed generator indexed or removed",
    ["collection", "action"],
)
SKIPPED = Counter(
    "strata_feedgen_skipped_total",
    "Records or commits the feed generator did not index, and why",
    ["reason"],
)
WRITE_FAILURES = Counter(
    "strata_feedgen_write_failures_total", "Batches whose transaction failed and was retried"
)


def _primary_langs(langs: Any) -> list[str]:
    """The languages a post declares, lower-cased, each with its primary subtag."""
    found: set[str] = set()
    for lang in langs if isinstance(langs, list) else ():
        if isinstance(lang, str) and lang:
            tag = lang.lower()
            found.add(tag)
            found.add(tag.split("-", 1)[0])
    return sorted(found)


class Indexer:
    """Writes batches of firehose frames into the feed generator's tables."""

    def __init__(
        self,
        db: Database,
        catalog: Catalog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.catalog = catalog or Catalog.bundled()
        self.clock = clock

    async def load_cursor(self, relay: str) -> int | None:
        """The last sequence number written from `relay`, or None if it was never read."""
        row = await self.db.fetchrow("SELECT seq FROM relay_cursor WHERE relay = ?", relay)
        return None if row is None else int(row[0])

    async def handle_batch(self, relay: str, batch: list[tuple[int, Frame]]) -> None:
        """Write `batch` and `relay`'s cursor in one transaction, retrying until it commits.

        A failed write (the database is briefly unavailable) is retried with backoff rather than
        skipped: the cursor must never move past events that were not written.
        """
        backoff = Backoff(base=0.2, cap=10.0)
        while True:
            try:
                await self._write(relay, batch)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                WRITE_FAILURES.inc()
                log_event(
                    log, "batch write failed", logging.ERROR, relay=relay, events=len(batch),
                    error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
                await asyncio.sleep(backoff.next_delay())
        for _, frame in batch:
            EVENTS.labels((frame.t or "error").lstrip("#")).inc()

    async def _write(self, relay: str, batch: list[tuple[int, Frame]]) -> None:
        now = int(self.clock() * 1000)
        repos = {
            frame.body["repo"]
            for _, frame in batch
            if frame.t == "#commit" and isinstance(frame.body.get("repo"), str)
        }
        async with self.db.transaction() as tx:
            revs: dict[str, str] = {}
            if repos:
                rows = await tx.fetch(
                    f"SELECT did, rev FROM repo WHERE did IN ({placeholders(len(repos))})",
                    *sorted(repos),
                )
                revs = {str(did): str(rev) for did, rev in rows}
            changed: set[str] = set()
            for _, frame in batch:
                if frame.t == "#commit":
                    if await self._commit(tx, frame.body, revs, now):
                        changed.add(frame.body["repo"])
                elif frame.t == "#account":
                    await self._account(tx, frame.body)
            for did in sorted(changed):
                await tx.execute(
                    "INSERT INTO repo (did, rev) VALUES (?, ?) "
                    "ON CONFLICT (did) DO UPDATE SET rev = excluded.rev",
                    did, revs[did],
                )  # fmt: skip
            await tx.execute(
                "INSERT INTO relay_cursor (relay, seq) VALUES (?, ?) "
                "ON CONFLICT (relay) DO UPDATE SET seq = excluded.seq",
                relay, batch[-1][0],
            )  # fmt: skip

    async def _commit(
        self, tx: Executor, body: dict[str, Any], revs: dict[str, str], now: int
    ) -> bool:
        """Apply one `#commit`; False when it was skipped as a replay or as unreadable."""
        repo, rev, ops = body.get("repo"), body.get("rev"), body.get("ops")
        if not isinstance(repo, str) or not isinstance(rev, str) or not isinstance(ops, list):
            SKIPPED.labels("malformed commit").inc()
            return False
        last = revs.get(repo)
        if last is not None and rev <= last:
            SKIPPED.labels("replayed commit").inc()
            return False
        wanted = [
            op
            for op in ops
            if isinstance(op, dict)
            and isinstance(op.get("path"), str)
            and op["path"].split("/", 1)[0] in TABLES
        ]
        blocks: dict[CID, bytes] = {}
        if any(op.get("action") in ("create", "update") for op in wanted):
            try:
                blocks = dict(CarReader(body.get("blocks") or b""))
            except (CoreError, TypeError) as exc:
                SKIPPED.labels("unreadable blocks").inc()
                log_event(log, "unreadable commit", logging.DEBUG, repo=repo, error=str(exc))
                return False
        for op in wanted:
            await self._op(tx, repo, op, blocks, now)
        revs[repo] = rev
        return True

    async def _op(
        self, tx: Executor, repo: str, op: dict[str, Any], blocks: dict[CID, bytes], now: int
    ) -> None:
        path: str = op["path"]
        collection, _, rkey = path.partition("/")
        uri = f"at://{repo}/{path}"
        action = op.get("action")
        if action == "delete":
            await delete_record(tx, uri, collection)
            RECORDS.labels(collection, "delete").inc()
            return
        if action not in ("create", "update"):
            SKIPPED.labels("unknown action").inc()
            return
        cid = op.get("cid")
        block = blocks.get(cid) if isinstance(cid, CID) else None
        if block is None:
            SKIPPED.labels("missing block").inc()
            return
        try:
            record = cbor.decode(block)
            self.catalog.validate_record(collection, record, rkey=rkey)
        except CoreError as exc:
            SKIPPED.labels("invalid record").inc()
            log_event(log, "invalid record", logging.DEBUG, uri=uri, error=str(exc))
            return
        if action == "update":
            await delete_record(tx, uri, collection)
        await index_record(tx, uri, str(cid), repo, collection, record, now)
        RECORDS.labels(collection, action).inc()

    async def _account(self, tx: Executor, body: dict[str, Any]) -> None:
        """A deleted account's records leave every feed."""
        did = body.get("did")
        if isinstance(did, str) and body.get("active") is False and body.get("status") == "deleted":
            await delete_account(tx, did)
            log_event(log, "account deleted", did=did)


async def index_record(
    tx: Executor,
    uri: str,
    cid: str,
    did: str,
    collection: str,
    record: dict[str, Any],
    now: int,
) -> None:
    """Insert one validated record (a no-op when it is already indexed)."""
    at = parse_millis(sort_at(record, format_millis(now)))
    if collection == "app.bsky.feed.post":
        reply = record.get("reply")
        root = ref_uri(reply.get("root")) if isinstance(reply, dict) else None
        parent = ref_uri(reply.get("parent")) if isinstance(reply, dict) else None
        await tx.execute(
            "INSERT INTO post (uri, cid, author, sort_at, indexed_at, is_reply, reply_root, "
            "reply_parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            uri, cid, did, at, now, 1 if parent else 0, root, parent,
        )  # fmt: skip
        langs = _primary_langs(record.get("langs"))
        if langs:
            await tx.executemany(
                "INSERT INTO post_lang (uri, lang, sort_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(uri, lang, at) for lang in langs],
            )
    elif collection == "app.bsky.feed.like":
        subject = ref_uri(record.get("subject"))
        if subject is not None:
            await tx.execute(
                "INSERT INTO likes (uri, creator, subject, indexed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                uri, did, subject, now,
            )  # fmt: skip
    elif collection == "app.bsky.feed.repost":
        subject = ref_uri(record.get("subject"))
        if subject is not None:
            await tx.execute(
                "INSERT INTO repost (uri, creator, subject, sort_at, indexed_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                uri, did, subject, at, now,
            )  # fmt: skip
    elif collection == "app.bsky.graph.follow":
        subject = record.get("subject")
        if isinstance(subject, str):
            await tx.execute(
                "INSERT INTO follow (uri, creator, subject) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                uri, did, subject,
            )  # fmt: skip


async def delete_record(tx: Executor, uri: str, collection: str) -> None:
    """Remove one record (a no-op for a URI that is not indexed)."""
    table = TABLES.get(collection)
    if table is None:
        return
    if table == "post":
        await tx.execute("DELETE FROM post_lang WHERE uri = ?", uri)
    await tx.execute(f"DELETE FROM {table} WHERE uri = ?", uri)


async def delete_account(tx: Executor, did: str) -> None:
    """Remove everything an account wrote."""
    await tx.execute(
        "DELETE FROM post_lang WHERE uri IN (SELECT uri FROM post WHERE author = ?)", did
    )
    await tx.execute("DELETE FROM post WHERE author = ?", did)
    for table in ("likes", "repost", "follow"):
        await tx.execute(f"DELETE FROM {table} WHERE creator = ?", did)
