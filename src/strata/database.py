"""One small SQL interface over SQLite (the embedded default) and Postgres (scale-out).

Queries are written once, in the subset both engines share, with `?` placeholders; the Postgres
side numbers them (`$1`, `$2`, ...). A list is passed as one parameter and tested with
`column = ANY(?)`, which Postgres takes as an array and SQLite as a JSON array (`json_each`),
so a query's text is the same whatever the list's length, and each engine prepares it once.
Schemas are written for SQLite (STRICT tables, INTEGER, BLOB) and translated for Postgres, or
given per engine where they differ (full-text search, triggers). Migrations are numbered and
applied on open, each in its own transaction, so a schema is never half-applied.

Reads outside a transaction never run on the caller's event loop: on SQLite they go to a pool
of reader threads, each with its own connection (WAL: readers never wait for the writer), and
on Postgres to a pool of connections. Write transactions on SQLite take the one writer
connection; beginning and committing run in a thread, so a loop never waits on the file lock
or on the commit's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import queue
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from strata.storage import connect_sqlite

T = TypeVar("T")

Row = Sequence[Any]
Query = tuple[str, Sequence[Any]]
"""A statement and its arguments."""

SQLITE_READERS = max(2, os.cpu_count() or 2)
"""Reader threads of SQLite: more than the cores only contend for them."""
POSTGRES_CONNECTIONS = 10
"""Connections to Postgres, whose queries wait on the network and the server."""


class Executor(Protocol):
    """What a query runs on: the database itself, or one of its open transactions."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Database(Executor, Protocol):
    """A database: queries outside a transaction read committed data."""

    dialect: str

    async def fetch_many(self, queries: Sequence[Query]) -> list[list[Row]]:
        """The rows of each of `queries`, read together (one trip on SQLite, concurrent round
        trips on Postgres)."""
        ...

    def transaction(self) -> Any:
        """`async with db.transaction() as tx:` one durable write transaction."""
        ...

    async def run_transaction(self, body: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """`await body(tx)` in one durable write transaction, returning what it returns: on
        SQLite all of it on a thread (so `body` must await nothing but its statements), on
        Postgres on the loop. For transactions with work of their own between statements."""
        ...

    async def close(self) -> None: ...


def placeholders(count: int) -> str:
    """`?, ?, ?` for an `IN (...)` list of `count` values."""
    return ", ".join("?" * count)


_ANY = re.compile(r"=\s*ANY\(\?\)")


@functools.lru_cache(maxsize=1024)
def _sqlite_text(sql: str) -> tuple[str, bool]:
    translated = _ANY.sub("IN (SELECT value FROM json_each(?))", sql)
    return translated, translated != sql


def sqlite_statement(sql: str, args: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """A statement as SQLite takes it: `column = ANY(?)` as membership in a JSON array
    parameter, its list arguments as JSON."""
    translated, lists = _sqlite_text(sql)
    if lists:
        args = tuple(json.dumps(a) if isinstance(a, list | tuple) else a for a in args)
    return translated, args


class _SqliteExecutor:
    """Statements on one connection, run where the caller runs (inside a transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self.conn.execute(*sqlite_statement(sql, args)).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self.conn.execute(*sqlite_statement(sql, args)).fetchone()
        return row

    async def execute(self, sql: str, *args: Any) -> None:
        self.conn.execute(*sqlite_statement(sql, args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(_sqlite_text(sql)[0], (sqlite_statement(sql, r)[1] for r in rows))


WRITER_CACHE_KIB = 64 * 1024
"""Page cache of the writer: an index's inserts land all over its B-trees."""
CHECKPOINT_PAGES = 10_000
"""Write-ahead log pages between checkpoints (SQLite's default is 1,000): fewer, larger copies
back into the database file."""
READER_CACHE_KIB = 16 * 1024
"""Page cache of each reader connection, beside the file mapped in memory."""
READER_MMAP_BYTES = 1 << 31
"""How much of the file readers map into memory: reads without a system call a page."""


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if not future.cancelled():
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _ReaderPool:
    """Threads with a read-only connection each, taking work from one queue and answering on
    the caller's loop (lighter than an executor: one future, one wake-up)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"sqlite-reader-{n}", daemon=True)
            for n in range(max(1, size))
        ]
        for thread in self._threads:
            thread.start()

    def run(self, queries: Sequence[Query]) -> asyncio.Future[list[list[Row]]]:
        """Run `queries` one after the other on one connection; their rows, on this loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[list[Row]]] = loop.create_future()
        self._work.put((loop, future, queries))
        return future

    def _serve(self) -> None:
        conn = connect_sqlite(self.path)
        conn.execute("PRAGMA query_only = 1")
        conn.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
        conn.execute(f"PRAGMA mmap_size = {READER_MMAP_BYTES}")
        try:
            while (item := self._work.get()) is not None:
                loop, future, queries = item
                result: Any = None
                error: BaseException | None = None
                try:
                    result = [
                        conn.execute(*sqlite_statement(sql, args)).fetchall()
                        for sql, args in queries
                    ]
                except Exception as exc:
                    error = exc
                # A closed loop (the caller gave up and stopped) has nobody waiting.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, future, result, error)
        finally:
            conn.close()

    def close(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()


def _run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, run here and now."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a SQLite transaction body awaited something other than its statements")


class SqliteDatabase:
    """SQLite in WAL mode: one connection writes (in explicit transactions), a pool of reader
    threads reads, so readers never see a transaction that is still open and never wait for
    one."""

    dialect = "sqlite"

    def __init__(
        self, path: Path, readers: int = SQLITE_READERS, checkpoint_pages: int = CHECKPOINT_PAGES
    ) -> None:
        self.path = path
        self.writer = connect_sqlite(path)
        self.writer.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        self.writer.execute(f"PRAGMA wal_autocheckpoint = {checkpoint_pages}")
        self.lock = asyncio.Lock()
        self._readers = _ReaderPool(path, readers)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return (await self._readers.run([(sql, args)]))[0]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetch_many(self, queries: Sequence[Query]) -> list[list[Row]]:
        """The rows of each query, read together (one trip to a reader thread)."""
        return await self._readers.run(queries) if queries else []

    async def execute(self, sql: str, *args: Any) -> None:
        async with self.transaction() as tx:
            await tx.execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteExecutor]:
        async with self.lock:
            # Waiting for another process's write lock, and the commit's fsync, happen in a
            # thread; the statements in between are short and run where the caller runs.
            await asyncio.to_thread(self.writer.execute, "BEGIN IMMEDIATE")
            try:
                yield _SqliteExecutor(self.writer)
            except BaseException:
                self.writer.execute("ROLLBACK")
                raise
            await asyncio.to_thread(self.writer.execute, "COMMIT")

    async def run_transaction(self, body: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """Run `body` in one write transaction, all of it on a thread: one trip from the loop,
        which goes on serving meanwhile. `body` awaits nothing but its statements, which on
        SQLite return without suspending."""
        async with self.lock:
            return await asyncio.to_thread(self._run_transaction, body)

    def _run_transaction(self, body: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        self.writer.execute("BEGIN IMMEDIATE")
        try:
            result = _run_to_end(body(_SqliteExecutor(self.writer)))
        except BaseException:
            self.writer.execute("ROLLBACK")
            raise
        self.writer.execute("COMMIT")
        return result

    async def close(self) -> None:
        await asyncio.to_thread(self._readers.close)
        self.writer.close()


_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=1024)
def postgres_sql(sql: str) -> str:
    """`?` placeholders numbered as Postgres wants them (queries here never hold a literal ?)."""
    counter = iter(range(1, 1 << 30))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


_DDL_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\)\s*STRICT\b"), ")"),
)


def postgres_ddl(ddl: str) -> str:
    """A schema written for SQLite, as Postgres takes it."""
    for pattern, replacement in _DDL_TYPES:
        ddl = pattern.sub(replacement, ddl)
    return ddl


class _PostgresExecutor:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self.conn.fetch(postgres_sql(sql), *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self.conn.fetchrow(postgres_sql(sql), *args)
        return row

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(postgres_sql(sql), *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(postgres_sql(sql), list(rows))


STATEMENT_CACHE = 512
"""Prepared statements each Postgres connection keeps (a query's text is the same on every
call, lists included, so a service's few hundred queries are each prepared once)."""


class Listener(Protocol):
    """A connection that receives a channel's notifications until it is closed (or lost)."""

    def is_closed(self) -> bool: ...

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        """Run a statement on the listening connection (to check that it still answers)."""
        ...

    def add_termination_listener(self, callback: Callable[[Any], None]) -> None:
        """Call `callback(connection)` as soon as the connection closes or is lost."""
        ...

    async def close(self) -> None: ...


SESSION_PING_TIMEOUT: Final = 5.0
SESSION_KEEPALIVES: Final = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
"""Asked of the server for a session's connection: it probes a silent client after 10 s and
ends the session (releasing its locks) about 25 s after the client went away, instead of the
system's two hours."""


class PostgresSession:
    """One connection of its own, outside the pool, for what lives as long as the connection:
    a session-level advisory lock, and the transactions that must run only while it is held
    (they fail once the connection is lost, and with it the lock). Its statements run one at
    a time."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._turn = asyncio.Lock()

    def is_closed(self) -> bool:
        closed: bool = self.conn.is_closed()
        return closed

    async def try_lock(self, key: tuple[int, int]) -> bool:
        """Take the advisory lock `key` (two-key form) for as long as this connection lives,
        if no other session holds it."""
        async with self._turn:
            taken: bool = await self.conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *key)
            return taken

    async def ping(self, timeout: float = SESSION_PING_TIMEOUT) -> None:
        """Raise if the connection no longer answers, within `timeout` seconds (a peer cut off
        without a word would otherwise keep the wait going for as long as TCP retries)."""
        async with self._turn:
            await self.conn.fetchval("SELECT 1", timeout=timeout)

    async def run_transaction(self, body: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """`await body(tx)` in one write transaction on this connection."""
        async with self._turn, self.conn.transaction():
            return await body(_PostgresExecutor(self.conn))

    async def close(self) -> None:
        """Close the connection (which releases its session locks)."""
        with contextlib.suppress(Exception):
            await self.conn.close(timeout=5)


class PostgresDatabase(_PostgresExecutor):
    """Postgres through an asyncpg pool; each transaction holds one pooled connection."""

    dialect = "postgres"

    def __init__(self, pool: Any, url: str) -> None:
        super().__init__(pool)
        self.pool = pool
        self.url = url

    @classmethod
    async def connect(cls, url: str, size: int = POSTGRES_CONNECTIONS) -> PostgresDatabase:
        import asyncpg

        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=max(1, size), statement_cache_size=STATEMENT_CACHE
        )
        return cls(pool, url)

    async def listen(self, channel: str, notified: Callable[[str], None]) -> Listener:
        """Call `notified(payload)` on this loop whenever a transaction that ran
        `NOTIFY channel` (or `pg_notify`) commits, in any process; on a connection of its own,
        outside the pool, because a listening connection stays open between notifications."""
        import asyncpg

        conn = await asyncpg.connect(self.url)
        await conn.add_listener(channel, lambda _conn, _pid, _channel, payload: notified(payload))
        listener: Listener = conn
        return listener

    async def session(self) -> PostgresSession:
        """A connection of its own, outside the pool (see `PostgresSession`)."""
        import asyncpg

        return PostgresSession(await asyncpg.connect(self.url, server_settings=SESSION_KEEPALIVES))

    async def fetch_many(self, queries: Sequence[Query]) -> list[list[Row]]:
        """The rows of each query, asked on as many pooled connections at once."""
        return list(await asyncio.gather(*(self.fetch(sql, *args) for sql, args in queries)))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresExecutor]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresExecutor(conn)

    async def run_transaction(self, body: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """`await body(tx)` in one write transaction."""
        async with self.transaction() as tx:
            return await body(tx)

    async def close(self) -> None:
        await self.pool.close()


async def open_database(
    url: str | None,
    sqlite_path: Path,
    pool_size: int | None = None,
    checkpoint_pages: int = CHECKPOINT_PAGES,
) -> Database:
    """Postgres when `url` is a `postgresql://` URL, else SQLite at `sqlite_path`; reads are
    served by `pool_size` reader threads or connections (by default `SQLITE_READERS` or
    `POSTGRES_CONNECTIONS`). On SQLite, the write-ahead log is copied back into the database
    every `checkpoint_pages` pages."""
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"a database URL starts with postgresql://, not {url!r}")
        return await PostgresDatabase.connect(url, pool_size or POSTGRES_CONNECTIONS)
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(sqlite_path, pool_size or SQLITE_READERS, checkpoint_pages)


class WrongDatabase(Exception):
    """The database holds another service's tables."""


@dataclass(frozen=True)
class PerEngine:
    """A migration whose statements differ between the engines, each statement given whole
    (trigger bodies hold semicolons)."""

    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


Migration = str | PerEngine
"""A schema written for SQLite (statements separated by `;`, translated for Postgres), or
statements per engine."""


def _statements(migration: Migration, dialect: str) -> list[str]:
    if isinstance(migration, PerEngine):
        return list(migration.sqlite if dialect == "sqlite" else migration.postgres)
    text = migration if dialect == "sqlite" else postgres_ddl(migration)
    return [s.strip() for s in text.split(";") if s.strip()]


MIGRATION_LOCK = (0x535452, 0)
"""The Postgres advisory lock (two-key form) that migrations of one database take in turn."""


async def _migrating(db: Database, tx: Executor) -> None:
    # Several processes of a service may start at once on one Postgres database: each of them
    # migrates in turn (on SQLite the write transaction already excludes the others).
    if db.dialect == "postgres":
        await tx.execute("SELECT pg_advisory_xact_lock(?, ?)", *MIGRATION_LOCK)


async def migrate(db: Database, migrations: Sequence[Migration], service: str) -> int:
    """Apply `service`'s migrations not yet applied, in order; returns the schema version
    reached. A database holds one service's tables: another service's is refused."""
    strict = " STRICT" if db.dialect == "sqlite" else ""
    async with db.transaction() as tx:
        await _migrating(db, tx)
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            f"(service TEXT NOT NULL, version INTEGER NOT NULL){strict}"
        )
    other = await db.fetchrow("SELECT service FROM schema_version WHERE service <> ?", service)
    if other is not None:
        raise WrongDatabase(
            f"this database holds the {other[0]}'s tables; give the {service} a database of its own"
        )
    current = 0
    for version, migration in enumerate(migrations, start=1):
        async with db.transaction() as tx:
            await _migrating(db, tx)
            row = await tx.fetchrow("SELECT max(version) FROM schema_version")
            current = int(row[0]) if row is not None and row[0] is not None else 0
            if version <= current:
                continue
            for statement in _statements(migration, db.dialect):
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_version (service, version) VALUES (?, ?)", service, version
            )
        current = version
    return current


async def highest_seq(tx: Executor, table: str, lock: tuple[int, int] | None) -> int:
    """The highest `seq` of `table` (0 when empty), for a transaction about to number rows
    above it. Where several processes write (Postgres), pass the advisory `lock` that all of
    them take: held until the transaction ends, it makes numbers follow commit order, with
    none given twice and no hole left by a rollback."""
    if lock is not None:
        await tx.execute("SELECT pg_advisory_xact_lock(?, ?)", *lock)
    row = await tx.fetchrow(f"SELECT coalesce(max(seq), 0) FROM {table}")
    return int(row[0]) if row is not None else 0


async def open_migrated(
    url: str | None,
    sqlite_path: Path,
    migrations: Sequence[Migration],
    service: str,
    checkpoint_pages: int = CHECKPOINT_PAGES,
) -> Database:
    """`open_database`, then `service`'s migrations applied; closed again if they fail."""
    db = await open_database(url, sqlite_path, checkpoint_pages=checkpoint_pages)
    try:
        await migrate(db, migrations, service)
    except BaseException:
        await db.close()
        raise
    return db
