"""Operation logs in SQLite or Postgres: one row per accepted operation, numbered by `seq`.

Writes happen in batches, each in one transaction of the directory's writer; reads outside it
see only committed batches. On SQLite one process writes. On Postgres several may: a write
transaction locks the DIDs it is about to check (transaction-scoped advisory locks, so two
processes can never both extend one log from the same `prev`), and takes the sequencing lock
only once its operations are checked, just before it inserts them. Sequence numbers are then
given in commit order, so `/export` never shows a gap that a slower commit fills later, and a
rolled-back batch leaves no hole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from strata.core.plc import IndexedOp
from strata.core.plc.operation import Operation
from strata.core.syntax.dates import format_millis
from strata.database import (
    Database,
    Executor,
    Listener,
    PostgresDatabase,
    Row,
    highest_seq,
    open_migrated,
)
from strata.plc.schema import MIGRATIONS

CHANNEL: Final = "strata_plc_operations"
"""Notified by every Postgres transaction that adds operations."""
SEQUENCING_LOCK: Final = (0x504C43, 1)
"""The advisory lock (in the two-key space, apart from the DIDs' one-key locks) held from the
first insert of a batch to its commit."""

CHECKPOINT_PAGES: Final = 1000
"""SQLite's default: a directory commits (and syncs) small batches, often of one operation,
and while the write-ahead log grows each sync also writes the file's new size; a short log is
soon reused in place."""

_COLUMNS: Final = "did, cid, operation, nullified, created_at"


def format_created_at(ms: int) -> str:
    """A createdAt timestamp as the directory writes it: `YYYY-MM-DDTHH:MM:SS.sssZ`."""
    return format_millis(ms)


def parse_created_at(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 timestamp (as `/export` carries them)."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An operation as stored, with the sequence number this directory gave it."""

    seq: int
    did: str
    cid: str
    operation: Operation
    created_at: int

    def export_json(self) -> dict[str, Any]:
        """The `sequenced_op` form of `/export` and `/export/stream`."""
        return {
            "seq": self.seq,
            "type": "sequenced_op",
            "did": self.did,
            "operation": self.operation,
            "cid": self.cid,
            "createdAt": format_created_at(self.created_at),
        }


@dataclass(eq=False, slots=True)
class NewOperation:
    """An operation a batch accepted, to be inserted."""

    did: str
    cid: str
    operation: Operation
    created_at: int
    # Set when a later operation of the same batch nullifies it.
    nullified: bool = False


def _indexed(row: Row) -> IndexedOp:
    did, cid, operation, nullified, created_at = row
    return IndexedOp(did, json.loads(operation), cid, bool(nullified), created_at)


def _did_lock_key(did: str) -> int:
    """The advisory lock key of a DID: 64 bits of its hash (a collision only makes two DIDs
    wait for each other)."""
    digest = hashlib.blake2b(did.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PlcStore:
    """The directory's tables on SQLite or Postgres."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    async def open(cls, database_url: str | None, sqlite_path: Path) -> PlcStore:
        """The store in Postgres at `database_url`, or else in SQLite at `sqlite_path`, with its
        migrations applied."""
        return cls(
            await open_migrated(
                database_url, sqlite_path, MIGRATIONS, "plc", checkpoint_pages=CHECKPOINT_PAGES
            )
        )

    @property
    def shared(self) -> bool:
        """Whether other processes may write to these tables too."""
        return isinstance(self.db, PostgresDatabase)

    async def close(self) -> None:
        """Close the database."""
        await self.db.close()

    async def ops_for_did(self, did: str, include_nullified: bool = False) -> list[IndexedOp]:
        """The DID's operations in log order."""
        sql = f"SELECT {_COLUMNS} FROM operations WHERE did = ?"
        if not include_nullified:
            sql += " AND nullified = 0"
        return [_indexed(row) for row in await self.db.fetch(sql + " ORDER BY seq", did)]

    async def last_op(self, did: str) -> Operation | None:
        """The DID's latest valid operation."""
        row = await self.db.fetchrow(
            "SELECT operation FROM operations WHERE did = ? AND nullified = 0"
            " ORDER BY seq DESC LIMIT 1",
            did,
        )
        return None if row is None else json.loads(row[0])

    async def last_seq(self) -> int:
        """The highest seq assigned so far (0 when empty)."""
        row = await self.db.fetchrow("SELECT max(seq) FROM operations")
        return int(row[0] or 0) if row is not None else 0

    async def export_seq(self, after: int, count: int) -> list[Accepted]:
        """Operations with seq > after, in seq order."""
        rows = await self.db.fetch(
            "SELECT seq, did, cid, operation, created_at FROM operations"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            after,
            count,
        )
        return [Accepted(seq, did, cid, json.loads(op), ms) for seq, did, cid, op, ms in rows]

    async def export_legacy(self, after_ms: int | None, count: int) -> list[IndexedOp]:
        """Operations created after `after_ms`, in createdAt order (the legacy export)."""
        order = " ORDER BY created_at, cid LIMIT ?"
        if after_ms is None:
            rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM operations{order}", count)
        else:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM operations WHERE created_at > ?{order}", after_ms, count
            )
        return [_indexed(row) for row in rows]

    async def cursor(self, source: str) -> str | None:
        """The saved position in a mirrored source's export."""
        row = await self.db.fetchrow("SELECT cursor FROM mirror_cursors WHERE source = ?", source)
        return None if row is None else str(row[0])

    async def listen(self, notified: Callable[[], None]) -> Listener:
        """Call `notified` whenever any process commits operations (Postgres only)."""
        assert isinstance(self.db, PostgresDatabase)
        return await self.db.listen(CHANNEL, lambda _payload: notified())

    # The methods below run inside the writer's transaction `tx`.

    async def lock(self, tx: Executor, dids: Iterable[str]) -> None:
        """Hold `dids` until the transaction ends. Keys are taken in ascending order, so two
        batches sharing DIDs wait for each other instead of deadlocking. On SQLite the write
        transaction already excludes every other writer."""
        if self.shared:
            keys = sorted({_did_lock_key(did) for did in dids})
            await tx.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k", keys)

    async def logs(self, tx: Executor, dids: Iterable[str]) -> dict[str, list[IndexedOp]]:
        """Every listed DID's full log (nullified operations included), in log order."""
        logs: dict[str, list[IndexedOp]] = {did: [] for did in dids}
        # A batch of one (a quiet directory's usual batch) is read without a list parameter,
        # which SQLite unpacks from JSON.
        one = len(logs) == 1
        rows = await tx.fetch(
            f"SELECT {_COLUMNS} FROM operations WHERE did {'= ?' if one else '= ANY(?)'}"
            " ORDER BY seq",
            next(iter(logs)) if one else list(logs),
        )
        for row in rows:
            logs[row[0]].append(_indexed(row))
        return logs

    async def insert(self, tx: Executor, ops: Sequence[NewOperation]) -> list[int]:
        """Add operations, in order; return the seq the database gave each (one more than the
        highest so far), holding the sequencing lock from here to the commit."""
        last = await highest_seq(tx, "operations", SEQUENCING_LOCK if self.shared else None)
        await tx.executemany(
            "INSERT INTO operations (seq, did, cid, operation, nullified, created_at)"
            " VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM operations), ?, ?, ?, ?, ?)",
            [
                (op.did, op.cid, json.dumps(op.operation, separators=(",", ":")),
                 int(op.nullified), op.created_at)
                for op in ops
            ],
        )  # fmt: skip
        return list(range(last + 1, last + 1 + len(ops)))

    async def nullify(self, tx: Executor, did: str, cids: list[str]) -> None:
        """Mark stored operations of `did` as nullified."""
        await tx.execute(
            "UPDATE operations SET nullified = 1 WHERE did = ? AND cid = ANY(?)", did, cids
        )

    async def save_cursor(self, tx: Executor, source: str, cursor: str) -> None:
        """Record a mirror position."""
        await tx.execute(
            "INSERT INTO mirror_cursors (source, cursor) VALUES (?, ?)"
            " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
            source,
            cursor,
        )

    async def announce(self, tx: Executor) -> None:
        """Tell every process listening that operations were added, once the transaction
        commits (Postgres delivers a notification at commit, and not at all on rollback)."""
        if self.shared:
            await tx.execute(f"SELECT pg_notify('{CHANNEL}', '')")
