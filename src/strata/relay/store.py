"""The relay's database: hosts, accounts with their latest commit, and the sequenced events.

Everything the relay learns from one upstream event (the event, the account's new state, the
host's cursor) is written in the same transaction, so after a crash the relay resumes each host
exactly where its stored events end: no gap and no duplicate.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from strata.storage import connect_sqlite

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS host (
    id INTEGER PRIMARY KEY,
    hostname TEXT NOT NULL UNIQUE,
    no_ssl INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'pds',
    status TEXT NOT NULL DEFAULT 'active',
    account_limit INTEGER NOT NULL,
    trusted INTEGER NOT NULL DEFAULT 0,
    lenient INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT -1,
    account_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS account (
    uid INTEGER PRIMARY KEY,
    did TEXT NOT NULL UNIQUE,
    host_id INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    upstream_status TEXT NOT NULL DEFAULT 'active',
    rev TEXT,
    commit_cid TEXT,
    data_cid TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS relay_seq (
    seq INTEGER PRIMARY KEY,
    did TEXT NOT NULL,
    event_type TEXT NOT NULL,
    frame BLOB NOT NULL,
    sequenced_at INTEGER NOT NULL
) STRICT;
"""

HOST_STATUSES: Final = ("active", "idle", "offline", "throttled", "banned")
ACCOUNT_CACHE: Final = 20_000


@dataclass
class Host:
    """An upstream: a PDS, or another relay (`kind` 'relay') that may speak for any account."""

    id: int
    hostname: str
    no_ssl: bool
    kind: str
    status: str
    account_limit: int
    trusted: bool
    lenient: bool
    last_seq: int
    account_count: int

    @property
    def url(self) -> str:
        return f"{'http' if self.no_ssl else 'https'}://{self.hostname}"

    def view(self) -> dict[str, Any]:
        """As `com.atproto.sync.listHosts` and `getHostStatus` show it."""
        return {
            "hostname": self.hostname,
            "seq": self.last_seq,
            "accountCount": self.account_count,
            "status": self.status,
        }


@dataclass
class Account:
    """An account the relay has seen, its status, and its latest verified commit."""

    uid: int
    did: str
    host_id: int
    status: str
    upstream_status: str
    rev: str | None
    commit_cid: str | None
    data_cid: str | None

    @property
    def active(self) -> bool:
        return self.status == "active" and self.upstream_status == "active"

    @property
    def status_field(self) -> str | None:
        """The `status` consumers see: the relay's own verdict first, then the host's."""
        if self.status != "active":
            return self.status
        return None if self.upstream_status == "active" else self.upstream_status


_HOST_COLUMNS: Final = (
    "id, hostname, no_ssl, kind, status, account_limit, trusted, lenient, last_seq, account_count"
)
_ACCOUNT_COLUMNS: Final = "uid, did, host_id, status, upstream_status, rev, commit_cid, data_cid"


def _host(row: Any) -> Host:
    return Host(
        int(row[0]), row[1], bool(row[2]), row[3], row[4], int(row[5]), bool(row[6]),
        bool(row[7]), int(row[8]), int(row[9]),
    )  # fmt: skip


class RelayStore:
    """The relay's SQLite file.

    Writes go into one open transaction that `commit` ends (the event log batches them); reads
    on the same connection see them at once, while `reader` sees only what is committed.
    """

    def __init__(self, path: Path) -> None:
        self.conn = connect_sqlite(path)
        self.conn.executescript(SCHEMA)
        self.reader = connect_sqlite(path)
        self._accounts: OrderedDict[str, Account] = OrderedDict()

    def close(self) -> None:
        self.conn.close()
        self.reader.close()

    def write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run a statement inside the open write transaction (opening one if needed)."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn.execute(sql, args)

    def commit(self) -> None:
        """Make every write so far durable."""
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    # Hosts

    def hosts(self, after_id: int = 0, limit: int = 1000) -> list[Host]:
        rows = self.conn.execute(
            f"SELECT {_HOST_COLUMNS} FROM host WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ).fetchall()
        return [_host(r) for r in rows]

    def host(self, hostname: str) -> Host | None:
        row = self.conn.execute(
            f"SELECT {_HOST_COLUMNS} FROM host WHERE hostname = ?", (hostname,)
        ).fetchone()
        return None if row is None else _host(row)

    def host_by_id(self, host_id: int) -> Host | None:
        row = self.conn.execute(f"SELECT {_HOST_COLUMNS} FROM host WHERE id = ?", (host_id,))
        found = row.fetchone()
        return None if found is None else _host(found)

    def add_host(
        self, hostname: str, no_ssl: bool, kind: str, account_limit: int, now_ms: int
    ) -> Host:
        self.write(
            "INSERT INTO host (hostname, no_ssl, kind, account_limit, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hostname) DO NOTHING",
            (hostname, int(no_ssl), kind, account_limit, now_ms),
        )
        host = self.host(hostname)
        assert host is not None
        return host

    def update_host(self, host: Host) -> None:
        self.write(
            "UPDATE host SET status = ?, account_limit = ?, trusted = ?, lenient = ?,"
            " last_seq = ?, account_count = ? WHERE id = ?",
            (
                host.status, host.account_limit, int(host.trusted), int(host.lenient),
                host.last_seq, host.account_count, host.id,
            ),
        )  # fmt: skip

    def new_hosts_since(self, since_ms: int) -> int:
        row = self.conn.execute("SELECT count(*) FROM host WHERE created_at >= ?", (since_ms,))
        return int(row.fetchone()[0])

    # Accounts

    def account(self, did: str) -> Account | None:
        cached = self._accounts.get(did)
        if cached is not None:
            self._accounts.move_to_end(did)
            return cached
        row = self.conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE did = ?", (did,)
        ).fetchone()
        if row is None:
            return None
        found = Account(*row)
        self._remember(found)
        return found

    def _remember(self, account: Account) -> None:
        self._accounts[account.did] = account
        if len(self._accounts) > ACCOUNT_CACHE:
            self._accounts.popitem(last=False)

    def add_account(self, did: str, host_id: int, status: str) -> Account:
        cursor = self.write(
            "INSERT INTO account (did, host_id, status) VALUES (?, ?, ?)", (did, host_id, status)
        )
        account = Account(
            int(cursor.lastrowid or 0), did, host_id, status, "active", None, None, None
        )
        self._remember(account)
        return account

    def save_account(self, account: Account) -> None:
        self.write(
            "UPDATE account SET host_id = ?, status = ?, upstream_status = ?, rev = ?,"
            " commit_cid = ?, data_cid = ? WHERE uid = ?",
            (
                account.host_id, account.status, account.upstream_status, account.rev,
                account.commit_cid, account.data_cid, account.uid,
            ),
        )  # fmt: skip

    def list_accounts(self, after_uid: int, limit: int) -> list[Account]:
        """Accounts with a known commit, in the order the relay first saw them."""
        rows = self.reader.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE uid > ? AND commit_cid IS NOT NULL"
            " ORDER BY uid LIMIT ?",
            (after_uid, limit),
        ).fetchall()
        return [Account(*r) for r in rows]

    def account_committed(self, did: str) -> Account | None:
        """The account as last committed (what the API answers with)."""
        row = self.reader.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE did = ?", (did,)
        ).fetchone()
        return None if row is None else Account(*row)

    # Events

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM relay_seq").fetchone()
        return int(row[0] or 0)

    def append_event(self, seq: int, did: str, event_type: str, frame: bytes, now_ms: int) -> None:
        self.write(
            "INSERT INTO relay_seq (seq, did, event_type, frame, sequenced_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (seq, did, event_type, frame, now_ms),
        )

    def oldest_seq(self) -> int | None:
        row = self.reader.execute("SELECT min(seq) FROM relay_seq").fetchone()
        return None if row[0] is None else int(row[0])

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.reader.execute(
            "SELECT seq, frame FROM relay_seq WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def _sequenced_at(self, seq: int) -> tuple[int, int] | None:
        row = self.conn.execute(
            "SELECT seq, sequenced_at FROM relay_seq WHERE seq >= ? ORDER BY seq LIMIT 1", (seq,)
        ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def prune_events(self, before_ms: int, batch: int = 10_000) -> int:
        """Drop up to `batch` of the oldest events sequenced before `before_ms`; how many.

        Sequencing times grow with the sequence number, so the boundary is found by bisection
        on the primary key rather than by an index on the time."""
        oldest = self._sequenced_at(0)
        if oldest is None or oldest[1] >= before_ms:
            return 0
        low, high = oldest[0], min(oldest[0] + batch, self.last_seq() + 1)
        while low < high:
            middle = (low + high) // 2
            found = self._sequenced_at(middle)
            if found is None or found[1] >= before_ms:
                high = middle
            else:
                low = found[0] + 1
        return self.write("DELETE FROM relay_seq WHERE seq < ?", (low,)).rowcount
