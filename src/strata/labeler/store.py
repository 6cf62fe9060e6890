"""The labeler's SQLite file: every label it has emitted (each one an event of its stream, kept
for replay from any cursor) and the reports it has received."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from strata.core import cbor
from strata.core.frames import message_frame
from strata.storage import connect_sqlite, transaction

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS label (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uri TEXT NOT NULL,
    val TEXT NOT NULL,
    neg INTEGER NOT NULL,
    label BLOB NOT NULL,
    frame BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS label_uri ON label (uri, seq);
CREATE TABLE IF NOT EXISTS report (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reason_type TEXT NOT NULL,
    reason TEXT,
    subject TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
"""


class LabelerStore:
    """Labels (as their stream's frames) and reports; writes are durable when they return."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = connect_sqlite(path)
        self.writer.executescript(SCHEMA)
        self.reader = connect_sqlite(path)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()

    def add_label(self, label: dict[str, Any]) -> tuple[int, bytes]:
        """Store a signed label as the next event; returns its sequence number and frame."""
        with transaction(self.writer) as conn:
            seq = conn.execute(
                "INSERT INTO label (uri, val, neg, label, frame) VALUES (?, ?, ?, ?, x'') "
                "RETURNING seq",
                (label["uri"], label["val"], int(bool(label.get("neg"))), cbor.encode(label)),
            ).fetchone()[0]
            frame = message_frame("#labels", {"seq": seq, "labels": [label]})
            conn.execute("UPDATE label SET frame = ? WHERE seq = ?", (frame, seq))
        return int(seq), frame

    def last_seq(self) -> int:
        row = self.reader.execute("SELECT max(seq) FROM label").fetchone()
        return int(row[0] or 0)

    def oldest_seq(self) -> int | None:
        row = self.reader.execute("SELECT min(seq) FROM label").fetchone()
        return int(row[0]) if row[0] is not None else None

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.reader.execute(
            "SELECT seq, frame FROM label WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [(int(seq), bytes(frame)) for seq, frame in rows]

    def query(
        self, patterns: Sequence[str], after: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Labels on URIs matching `patterns` (a trailing `*` matches any rest), oldest first,
        after sequence number `after`."""
        conditions, args = [], []
        for pattern in patterns:
            if pattern.endswith("*"):
                prefix = pattern[:-1]
                conditions.append("substr(uri, 1, ?) = ?")
                args += [len(prefix), prefix]
            else:
                conditions.append("uri = ?")
                args.append(pattern)
        if not conditions:
            return []
        rows = self.reader.execute(
            f"SELECT seq, label FROM label WHERE seq > ? AND ({' OR '.join(conditions)}) "
            "ORDER BY seq LIMIT ?",
            (after, *args, limit),
        ).fetchall()
        return [(int(seq), cbor.decode(raw)) for seq, raw in rows]

    def add_report(
        self,
        reason_type: str,
        reason: str | None,
        subject: dict[str, Any],
        reported_by: str,
        created_at: str,
    ) -> int:
        with transaction(self.writer) as conn:
            row = conn.execute(
                "INSERT INTO report (reason_type, reason, subject, reported_by, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (reason_type, reason, json.dumps(subject), reported_by, created_at),
            ).fetchone()
        return int(row[0])

    def reports(self, before: int | None, limit: int) -> list[dict[str, Any]]:
        """Reports, newest first, with ids below `before`."""
        rows = self.reader.execute(
            "SELECT id, reason_type, reason, subject, reported_by, created_at FROM report "
            "WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before if before is not None else 1 << 62, limit),
        ).fetchall()
        return [
            {
                "id": id_,
                "reasonType": reason_type,
                **({"reason": reason} if reason is not None else {}),
                "subject": json.loads(subject),
                "reportedBy": reported_by,
                "createdAt": created_at,
            }
            for id_, reason_type, reason, subject, reported_by, created_at in rows
        ]
