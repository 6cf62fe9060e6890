"""The relay's database: hosts, accounts with their latest commit, and the sequenced events,
in SQLite (one relay process) or Postgres (several processes on one database).

Everything the relay learns from one upstream event (the event, the account's new state, the
host's cursor) is written in the same transaction, so after a crash the relay resumes each host
exactly where its stored events end: no gap and no duplicate. Accepted changes wait in memory
(where ingest reads them back at once) until `commit` writes the whole batch in one
transaction: one fsync for many events. Sequence numbers are given inside that transaction,
under a lock held until it commits, so they follow commit order and a process that tails the
events by `seq` never passes over an event that commits late.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from strata.core.frames import message_frame
from strata.database import (
    Database,
    Executor,
    Listener,
    PostgresDatabase,
    Row,
    highest_seq,
    open_migrated,
)
from strata.relay.schema import MIGRATIONS

CHANNEL: Final = "strata_relay_events"
"""Notified by every Postgres transaction that adds events."""
COMMANDS: Final = "strata_relay_commands"
"""Notified by every Postgres transaction that stores a command for the ingesting process."""
SEQUENCING_LOCK: Final = (0x52454C, 1)
"""The advisory lock (two-key form) held from a batch's first event insert to its commit."""

HOST_STATUSES: Final = ("active", "idle", "offline", "throttled", "banned")
ACCOUNT_CACHE: Final = 20_000

T = TypeVar("T")


class Writer(Protocol):
    """Where the relay's batches are committed: the database, or on Postgres the connection
    that holds the right to ingest."""

    async def run_transaction(self, body: Callable[[Executor], Coroutine[Any, Any, T]]) -> T: ...


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


def _account(row: Row) -> Account:
    return Account(int(row[0]), row[1], int(row[2]), row[3], row[4], row[5], row[6], row[7])


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An accepted event, numbered when its batch commits."""

    did: str
    event_type: str
    body: dict[str, Any]
    sequenced_at: int


@dataclass(frozen=True, slots=True)
class Batch:
    """What one commit writes: accounts and hosts as they were when it began, events, and the
    commands it carries out."""

    accounts: list[tuple[Any, ...]]
    hosts: list[tuple[Any, ...]]
    events: list[NewEvent]
    commands_done: list[int]


class RelayStore:
    """The relay's tables on SQLite or Postgres, with the batch of changes not yet committed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.writer: Writer | None = db
        """None while another process ingests (Postgres)."""
        self._accounts: OrderedDict[str, Account] = OrderedDict()
        # Accounts changed since the last commit began, and those of the commit under way:
        # what ingest reads before the database has it.
        self._dirty: dict[str, Account] = {}
        self._committing: dict[str, Account] = {}
        self._hosts: dict[int, Host] = {}
        self._events: list[NewEvent] = []
        self._commands_done: list[int] = []
        self._commits = 0

    @classmethod
    async def open(cls, database_url: str | None, sqlite_path: Path) -> RelayStore:
        """The store in Postgres at `database_url`, or else in SQLite at `sqlite_path`, with its
        migrations applied."""
        return cls(await open_migrated(database_url, sqlite_path, MIGRATIONS, "relay"))

    @property
    def shared(self) -> bool:
        """Whether other processes may use these tables too."""
        return isinstance(self.db, PostgresDatabase)

    async def close(self) -> None:
        """Close the database (changes not committed are dropped)."""
        await self.db.close()

    async def listen(self, channel: str, notified: Callable[[], None]) -> Listener:
        """Call `notified` whenever any process commits a transaction that notifies `channel`
        (Postgres only)."""
        assert isinstance(self.db, PostgresDatabase)
        return await self.db.listen(channel, lambda _payload: notified())

    # Commands for the ingesting process

    async def add_command(self, action: str, subject: str, args: str) -> None:
        """Store a command for the ingesting process, and wake it."""

        async def body(tx: Executor) -> None:
            await tx.execute(
                "INSERT INTO relay_command (action, subject, args) VALUES (?, ?, ?)",
                action, subject, args,
            )  # fmt: skip
            if self.shared:
                await tx.execute(f"SELECT pg_notify('{COMMANDS}', '')")

        await self.db.run_transaction(body)

    async def commands(self) -> list[tuple[int, str, str, str]]:
        """The stored commands, oldest first."""
        rows = await self.db.fetch(
            "SELECT id, action, subject, args FROM relay_command ORDER BY id"
        )
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    def command_done(self, command_id: int) -> None:
        """Delete a command with the next commit (which carries out its effect)."""
        self._commands_done.append(command_id)

    # Hosts (read as committed)

    async def hosts(self, after_id: int = 0, limit: int = 1000) -> list[Host]:
        rows = await self.db.fetch(
            f"SELECT {_HOST_COLUMNS} FROM host WHERE id > ? ORDER BY id LIMIT ?", after_id, limit
        )
        return [_host(r) for r in rows]

    async def host(self, hostname: str) -> Host | None:
        row = await self.db.fetchrow(
            f"SELECT {_HOST_COLUMNS} FROM host WHERE hostname = ?", hostname
        )
        return None if row is None else _host(row)

    async def host_by_id(self, host_id: int) -> Host | None:
        row = await self.db.fetchrow(f"SELECT {_HOST_COLUMNS} FROM host WHERE id = ?", host_id)
        return None if row is None else _host(row)

    async def add_host(
        self, hostname: str, no_ssl: bool, kind: str, account_limit: int, now_ms: int
    ) -> Host:
        """Store a host at once (idempotent by name); the stored row."""
        await self.db.execute(
            "INSERT INTO host (hostname, no_ssl, kind, account_limit, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hostname) DO NOTHING",
            hostname, int(no_ssl), kind, account_limit, now_ms,
        )  # fmt: skip
        host = await self.host(hostname)
        assert host is not None
        return host

    def update_host(self, host: Host) -> None:
        """Write the host's state with the next commit."""
        self._hosts[host.id] = host

    async def new_hosts_since(self, since_ms: int) -> int:
        row = await self.db.fetchrow("SELECT count(*) FROM host WHERE created_at >= ?", since_ms)
        return int(row[0]) if row is not None else 0

    # Accounts

    def _pending(self, did: str) -> Account | None:
        found = self._dirty.get(did) or self._committing.get(did)
        if found is None:
            found = self._accounts.get(did)
            if found is not None:
                self._accounts.move_to_end(did)
        return found

    async def account(self, did: str) -> Account | None:
        """The account with the changes not yet committed (what ingest decides on)."""
        while (found := self._pending(did)) is None:
            commits = self._commits
            row = await self.db.fetchrow(
                f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE did = ?", did
            )
            found = self._pending(did)
            if found is not None:
                break
            # A commit that ended during the read may have written this account after the
            # read saw it: read again.
            if commits == self._commits:
                if row is None:
                    return None
                found = _account(row)
                self._remember(found)
                break
        return found

    def _remember(self, account: Account) -> None:
        self._accounts[account.did] = account
        if len(self._accounts) > ACCOUNT_CACHE:
            self._accounts.popitem(last=False)

    def forget_accounts(self) -> None:
        """Drop every account read so far (another process may have changed them)."""
        self._accounts.clear()

    def add_account(self, did: str, host_id: int, status: str) -> Account:
        """A new account, written with the next commit."""
        account = Account(0, did, host_id, status, "active", None, None, None)
        self._remember(account)
        self._dirty[did] = account
        return account

    def save_account(self, account: Account) -> None:
        """Write the account's state with the next commit."""
        self._dirty[account.did] = account

    async def list_accounts(self, after_uid: int, limit: int) -> list[Account]:
        """Accounts with a known commit, in the order the relay first saw them."""
        rows = await self.db.fetch(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE uid > ? AND commit_cid IS NOT NULL"
            " ORDER BY uid LIMIT ?",
            after_uid,
            limit,
        )
        return [_account(r) for r in rows]

    async def account_committed(self, did: str) -> Account | None:
        """The account as last committed (what the API answers with)."""
        row = await self.db.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE did = ?", did)
        return None if row is None else _account(row)

    # Events

    async def last_seq(self) -> int:
        row = await self.db.fetchrow("SELECT max(seq) FROM relay_seq")
        return int(row[0] or 0) if row is not None else 0

    async def events_after(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Committed events with seq > after, in seq order."""
        rows = await self.db.fetch(
            "SELECT seq, frame FROM relay_seq WHERE seq > ? ORDER BY seq LIMIT ?", after, limit
        )
        return [(int(seq), bytes(frame)) for seq, frame in rows]

    def append_event(self, did: str, event_type: str, body: dict[str, Any], now_ms: int) -> None:
        """Add an event to the next commit, which numbers it."""
        self._events.append(NewEvent(did, event_type, body, now_ms))

    @property
    def pending_events(self) -> int:
        return len(self._events)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty or self._hosts or self._events or self._commands_done)

    def take_batch(self) -> Batch:
        """Everything changed since the last batch, as it is now; `committed` or `dropped`
        must follow."""
        accounts = [
            (a.did, a.host_id, a.status, a.upstream_status, a.rev, a.commit_cid, a.data_cid)
            for a in self._dirty.values()
        ]
        hosts = [
            (h.status, h.account_limit, int(h.trusted), int(h.lenient), h.last_seq,
             h.account_count, h.id)
            for h in self._hosts.values()
        ]  # fmt: skip
        batch = Batch(accounts, hosts, self._events, self._commands_done)
        self._committing, self._dirty, self._hosts, self._events = self._dirty, {}, {}, []
        self._commands_done = []
        return batch

    def committed(self) -> None:
        """The batch taken last is durable."""
        self._committing = {}
        self._commits += 1

    def dropped(self) -> None:
        """The batch taken last did not commit: what was read of accounts since may be wrong."""
        self._committing = {}
        self._commits += 1
        self._accounts.clear()

    async def write(self, tx: Executor, batch: Batch, notify: bool) -> list[tuple[int, bytes]]:
        """Write `batch` in the transaction `tx`; the events' sequence numbers and frames."""
        if batch.accounts:
            await tx.executemany(
                "INSERT INTO account (did, host_id, status, upstream_status, rev, commit_cid,"
                " data_cid) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (did) DO UPDATE SET"
                " host_id = excluded.host_id, status = excluded.status,"
                " upstream_status = excluded.upstream_status, rev = excluded.rev,"
                " commit_cid = excluded.commit_cid, data_cid = excluded.data_cid",
                batch.accounts,
            )
        if batch.hosts:
            await tx.executemany(
                "UPDATE host SET status = ?, account_limit = ?, trusted = ?, lenient = ?,"
                " last_seq = ?, account_count = ? WHERE id = ?",
                batch.hosts,
            )
        if batch.commands_done:
            await tx.execute("DELETE FROM relay_command WHERE id = ANY(?)", batch.commands_done)
        if not batch.events:
            return []
        last = await highest_seq(tx, "relay_seq", SEQUENCING_LOCK if self.shared else None)
        frames = [
            (last + n, message_frame(e.event_type, {**e.body, "seq": last + n}))
            for n, e in enumerate(batch.events, start=1)
        ]
        await tx.executemany(
            "INSERT INTO relay_seq (seq, did, event_type, frame, sequenced_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (seq, e.did, e.event_type, frame, e.sequenced_at)
                for (seq, frame), e in zip(frames, batch.events, strict=True)
            ],
        )
        if notify and self.shared:
            await tx.execute(f"SELECT pg_notify('{CHANNEL}', '')")
        return frames

    async def oldest_seq(self) -> int | None:
        row = await self.db.fetchrow("SELECT min(seq) FROM relay_seq")
        return None if row is None or row[0] is None else int(row[0])

    async def _sequenced_at(self, seq: int) -> tuple[int, int] | None:
        row = await self.db.fetchrow(
            "SELECT seq, sequenced_at FROM relay_seq WHERE seq >= ? ORDER BY seq LIMIT 1", seq
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def prune_boundary(self, before_ms: int, batch: int = 10_000) -> int | None:
        """The seq before which up to `batch` of the oldest events were sequenced before
        `before_ms`, or None when none was.

        Sequencing times grow with the sequence number, so the boundary is found by bisection
        on the primary key rather than by an index on the time."""
        oldest = await self._sequenced_at(0)
        if oldest is None or oldest[1] >= before_ms:
            return None
        low, high = oldest[0], min(oldest[0] + batch, await self.last_seq() + 1)
        while low < high:
            middle = (low + high) // 2
            found = await self._sequenced_at(middle)
            if found is None or found[1] >= before_ms:
                high = middle
            else:
                low = found[0] + 1
        return low


async def prune(tx: Executor, before_seq: int) -> None:
    """Drop the events numbered below `before_seq`."""
    await tx.execute("DELETE FROM relay_seq WHERE seq < ?", before_seq)
