"""Operation logs in SQLite: one row per accepted operation, numbered by `seq`.

Writes happen in batches on one connection (one transaction, one fsync per batch); reads use
their own connection and see only committed batches (WAL mode).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from strata.core.plc import IndexedOp
from strata.core.plc.operation import Operation
from strata.core.syntax.dates import format_millis
from strata.storage import connect_sqlite

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY,
    did TEXT NOT NULL,
    cid TEXT NOT NULL,
    operation TEXT NOT NULL,
    nullified INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS operations_did_cid ON operations (did, cid);
CREATE INDEX IF NOT EXISTS operations_did_seq ON operations (did, seq);
CREATE INDEX IF NOT EXISTS operations_created ON operations (created_at, cid);
CREATE TABLE IF NOT EXISTS mirror_cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
) STRICT;
"""


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


def _indexed(row: tuple[Any, ...]) -> IndexedOp:
    did, cid, operation, nullified, created_at = row
    return IndexedOp(did, json.loads(operation), cid, bool(nullified), created_at)


class PlcStore:
    """The directory's tables; not thread-safe per connection (one writer, one reader)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = connect_sqlite(path)
        self.writer.executescript(SCHEMA)
        self.reader = connect_sqlite(path)

    def close(self) -> None:
        """Close both connections."""
        self.writer.close()
        self.reader.close()

    # Reads take a connection so the writer can read its own uncommitted batch.
    def ops_for_did(
        self, did: str, include_nullified: bool = False, conn: sqlite3.Connection | None = None
    ) -> list[IndexedOp]:
        """The DID's operations in log order."""
        sql = "SELECT did, cid, operation, nullified, created_at FROM operations WHERE did = ?"
        if not include_nullified:
            sql += " AND nullified = 0"
        rows = (conn or self.reader).execute(sql + " ORDER BY seq", (did,)).fetchall()
        return [_indexed(row) for row in rows]

    def last_op(self, did: str) -> Operation | None:
        """The DID's latest valid operation."""
        row = self.reader.execute(
            "SELECT operation FROM operations WHERE did = ? AND nullified = 0"
            " ORDER BY seq DESC LIMIT 1",
            (did,),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def insert(
        self,
        conn: sqlite3.Connection,
        did: str,
        cid: str,
        op: Operation,
        created_at: int,
        nullify: list[str],
    ) -> int:
        """Add an operation (inside the caller's transaction); return its seq."""
        if nullify:
            conn.executemany(
                "UPDATE operations SET nullified = 1 WHERE did = ? AND cid = ?",
                [(did, c) for c in nullify],
            )
        cursor = conn.execute(
            "INSERT INTO operations (did, cid, operation, created_at) VALUES (?, ?, ?, ?)",
            (did, cid, json.dumps(op, separators=(",", ":")), created_at),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def last_seq(self) -> int:
        """The highest seq assigned so far (0 when empty)."""
        row = self.reader.execute("SELECT max(seq) FROM operations").fetchone()
        return int(row[0] or 0)

    def export_seq(self, after: int, count: int) -> list[Accepted]:
        """Operations with seq > after, in seq order."""
        rows = self.reader.execute(
            "SELECT seq, did, cid, operation, created_at FROM operations"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, count),
        ).fetchall()
        return [Accepted(seq, did, cid, json.loads(op), ms) for seq, did, cid, op, ms in rows]

    def export_legacy(self, after_ms: int | None, count: int) -> list[IndexedOp]:
        """Operations created after `after_ms`, in createdAt order (the legacy export)."""
        where = "" if after_ms is None else " WHERE created_at > ?"
        params: tuple[int, ...] = (count,) if after_ms is None else (after_ms, count)
        rows = self.reader.execute(
            "SELECT did, cid, operation, nullified, created_at FROM operations"
            + where
            + " ORDER BY created_at, cid LIMIT ?",
            params,
        ).fetchall()
        return [_indexed(row) for row in rows]

    def cursor(self, source: str) -> str | None:
        """The saved position in a mirrored source's export."""
        row = self.reader.execute(
            "SELECT cursor FROM mirror_cursors WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])

    def save_cursor(self, conn: sqlite3.Connection, source: str, cursor: str) -> None:
        """Record a mirror position (inside the caller's transaction)."""
        conn.execute(
            "INSERT INTO mirror_cursors (source, cursor) VALUES (?, ?)"
            " ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor",
            (source, cursor),
        )
