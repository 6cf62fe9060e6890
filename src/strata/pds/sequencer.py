"""The PDS's firehose: every repository change numbered, stored, and fanned out.

Each event is encoded once into its `subscribeRepos` frame when it is sequenced; the stored
frame serves cursor replay and the same bytes go to every live consumer through the
broadcaster (`strata.net.firehose`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import Counter

from strata.core.car import write_car
from strata.core.cid import CID
from strata.core.frames import message_frame
from strata.core.repo import CommitResult
from strata.core.syntax.dates import format_millis
from strata.net.firehose import WINDOW_BYTES, Broadcaster
from strata.pds.accounts import AccountStore, now_ms

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS repo_seq (
    seq INTEGER PRIMARY KEY,
    did TEXT NOT NULL,
    event_type TEXT NOT NULL,
    frame BLOB NOT NULL,
    sequenced_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS repo_seq_did ON repo_seq (did);
"""

EVENTS = Counter("strata_pds_events_total", "Firehose events sequenced", ["type"])


def iso_now() -> str:
    """The current time as the firehose writes it: `YYYY-MM-DDTHH:MM:SS.sssZ`."""
    return format_millis(now_ms())


def commit_body(did: str, result: CommitResult, blobs: Iterable[CID], time: str) -> dict[str, Any]:
    """The `#commit` event of a commit (without its `seq`), with the blocks that prove it."""
    body: dict[str, Any] = {
        "rebase": False,
        "tooBig": False,
        "repo": did,
        "commit": result.cid,
        "rev": result.commit.rev,
        "since": result.since,
        "blocks": write_car([result.cid], result.event_blocks.items()),
        "ops": [op.to_event() for op in result.ops],
        "blobs": sorted(set(blobs)),
        "time": time,
    }
    if result.prev_data is not None:
        body["prevData"] = result.prev_data
    return body


class Sequencer:
    """Numbers events in the service database and publishes them to subscribers."""

    def __init__(self, accounts: AccountStore, window_bytes: int = WINDOW_BYTES) -> None:
        self.accounts = accounts
        accounts.conn.executescript(SCHEMA)
        self.broadcaster = Broadcaster(window_bytes)
        row = accounts.conn.execute("SELECT max(seq) FROM repo_seq").fetchone()
        self._last = int(row[0] or 0)

    @property
    def last_seq(self) -> int:
        return self._last

    async def oldest_seq(self) -> int | None:
        row = self.accounts.conn.execute("SELECT min(seq) FROM repo_seq").fetchone()
        return int(row[0]) if row[0] is not None else None

    def _append(
        self,
        conn: sqlite3.Connection,
        did: str,
        event_type: str,
        body: dict[str, Any],
    ) -> tuple[int, bytes]:
        seq = self._last + 1
        frame = message_frame(event_type, {"seq": seq, **body})
        conn.execute(
            "INSERT INTO repo_seq (seq, did, event_type, frame, sequenced_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (seq, did, event_type, frame, now_ms()),
        )
        return seq, frame

    def _publish(self, event_type: str, seq: int, frame: bytes) -> None:
        self._last = seq
        EVENTS.labels(event_type).inc()
        self.broadcaster.publish([(seq, frame)])

    def _sequence(
        self, did: str, event_type: str, body: dict[str, Any], root: tuple[str, str] | None = None
    ) -> int:
        with self.accounts.transaction() as conn:
            seq, frame = self._append(conn, did, event_type, body)
            if root is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO repo_root (did, cid, rev, indexed_at)"
                    " VALUES (?, ?, ?, ?)",
                    (did, root[0], root[1], now_ms()),
                )
        self._publish(event_type, seq, frame)
        return seq

    def commit(self, did: str, result: CommitResult, blobs: Iterable[CID]) -> int:
        """Sequence a `#commit` (and record the new root); returns its number."""
        body = commit_body(did, result, blobs, iso_now())
        return self._sequence(did, "#commit", body, (str(result.cid), result.commit.rev))

    def sync(self, did: str, commit_cid: CID, commit_block: bytes, rev: str) -> int:
        """Sequence a `#sync`: the repository's state is now this commit, whatever came before."""
        body = {
            "did": did,
            "blocks": write_car([commit_cid], [(commit_cid, commit_block)]),
            "rev": rev,
            "time": iso_now(),
        }
        return self._sequence(did, "#sync", body, (str(commit_cid), rev))

    def identity(self, did: str, handle: str | None) -> int:
        body: dict[str, Any] = {"did": did, "time": iso_now()}
        if handle is not None:
            body["handle"] = handle
        return self._sequence(did, "#identity", body)

    def account(self, did: str, active: bool, status: str | None) -> int:
        body: dict[str, Any] = {"did": did, "time": iso_now(), "active": active}
        if status is not None:
            body["status"] = status
        return self._sequence(did, "#account", body)

    async def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Stored frames with a sequence number above `after`, oldest first."""
        rows = self.accounts.conn.execute(
            "SELECT seq, frame FROM repo_seq WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]
