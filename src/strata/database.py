"""One small SQL interface over SQLite (the embedded default) and Postgres (scale-out).

Queries are written once, in the subset both engines share, with `?` placeholders; the Postgres
side numbers them (`$1`, `$2`, ...). Schemas are written for SQLite (STRICT tables, INTEGER,
BLOB) and translated for Postgres. Migrations are numbered and applied on open, each in its own
transaction, so a schema is never half-applied.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from strata.storage import connect_sqlite

Row = Sequence[Any]


class Executor(Protocol):
    """What a query runs on: the database itself, or one of its open transactions."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Database(Executor, Protocol):
    """A database: queries outside a transaction read committed data."""

    dialect: str

    def transaction(self) -> Any:
        """`async with db.transaction() as tx:` one durable write transaction."""
        ...

    async def close(self) -> None: ...


def placeholders(count: int) -> str:
    """`?, ?, ?` for an `IN (...)` list of `count` values."""
    return ", ".join("?" * count)


class _SqliteExecutor:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self.conn.execute(sql, args).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self.conn.execute(sql, args).fetchone()
        return row

    async def execute(self, sql: str, *args: Any) -> None:
        self.conn.execute(sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)


class SqliteDatabase(_SqliteExecutor):
    """SQLite in WAL mode: one connection writes (in explicit transactions), another reads, so
    readers never see a transaction that is still open."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.writer = connect_sqlite(path)
        super().__init__(connect_sqlite(path))
        self.lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteExecutor]:
        async with self.lock:
            self.writer.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteExecutor(self.writer)
            except BaseException:
                self.writer.execute("ROLLBACK")
                raise
            self.writer.execute("COMMIT")

    async def close(self) -> None:
        self.conn.close()
        self.writer.close()


_PLACEHOLDER = re.compile(r"\?")


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


class PostgresDatabase(_PostgresExecutor):
    """Postgres through an asyncpg pool; each transaction holds one pooled connection."""

    dialect = "postgres"

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self.pool = pool

    @classmethod
    async def connect(cls, url: str, size: int = 10) -> PostgresDatabase:
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresExecutor]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PostgresExecutor(conn)

    async def close(self) -> None:
        await self.pool.close()


async def open_database(url: str | None, sqlite_path: Path) -> Database:
    """Postgres when `url` is a `postgresql://` URL, else SQLite at `sqlite_path`."""
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"a database URL starts with postgresql://, not {url!r}")
        return await PostgresDatabase.connect(url)
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(sqlite_path)


class WrongDatabase(Exception):
    """The database holds another service's tables."""


async def migrate(db: Database, migrations: Sequence[str], service: str) -> int:
    """Apply `service`'s migrations not yet applied, in order; returns the schema version
    reached. A database holds one service's tables: another service's is refused."""
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(service TEXT NOT NULL, version INTEGER NOT NULL)"
        + (" STRICT" if db.dialect == "sqlite" else "")
    )
    other = await db.fetchrow("SELECT service FROM schema_version WHERE service <> ?", service)
    if other is not None:
        raise WrongDatabase(
            f"this database holds the {other[0]}'s tables; give the {service} a database of its own"
        )
    row = await db.fetchrow("SELECT max(version) FROM schema_version")
    current = int(row[0]) if row is not None and row[0] is not None else 0
    for version, ddl in enumerate(migrations, start=1):
        if version <= current:
            continue
        async with db.transaction() as tx:
            text = ddl if db.dialect == "sqlite" else postgres_ddl(ddl)
            for statement in (s.strip() for s in text.split(";")):
                if statement:
                    await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_version (service, version) VALUES (?, ?)", service, version
            )
        current = version
    return current
