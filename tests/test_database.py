"""The shared SQL layer: placeholders and schemas translated for Postgres, migrations applied
once (and in turn by processes starting together), one database per service, lists as one
parameter, reads that run beside the loop and beside a long write transaction, transactions
with work of their own, and Postgres notifications."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from strata.database import (
    Executor,
    PostgresDatabase,
    WrongDatabase,
    migrate,
    open_database,
    postgres_ddl,
    postgres_sql,
)
from tests.postgres import PostgresCluster

SCHEMA = (
    "CREATE TABLE item (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, data BLOB) "
    "STRICT",
    "CREATE INDEX item_name ON item (name)",
)


def test_translation_for_postgres() -> None:
    assert postgres_sql("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == (
        "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    )
    assert postgres_ddl(SCHEMA[0]) == (
        "CREATE TABLE item (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, data BYTEA)"
    )


async def test_migrations_apply_once_on_each_backend(
    tmp_path: Path, database_url: str | None
) -> None:
    db = await open_database(database_url, tmp_path / "x.sqlite")
    try:
        assert await migrate(db, SCHEMA[:1], "svc") == 1
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO item (name, data) VALUES (?, ?)", [("a", b"\x00")])
        assert await migrate(db, SCHEMA, "svc") == 2
        assert await migrate(db, SCHEMA, "svc") == 2
        assert await db.fetch("SELECT name, data FROM item") == [("a", b"\x00")]
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO item (name) VALUES (?)", "rolled back")
                raise RuntimeError
        assert await db.fetchrow("SELECT count(*) FROM item") == (1,)
        with pytest.raises(WrongDatabase):
            await migrate(db, SCHEMA, "other")
    finally:
        await db.close()


async def test_lists_are_one_parameter_on_each_backend(
    tmp_path: Path, database_url: str | None
) -> None:
    db = await open_database(database_url, tmp_path / "x.sqlite")
    try:
        await migrate(db, SCHEMA, "svc")
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO item (name) VALUES (?)", [(n,) for n in "abcd"])
        query = "SELECT name FROM item WHERE name = ANY(?) ORDER BY name"
        assert [r[0] for r in await db.fetch(query, ["b", "d", "z"])] == ["b", "d"]
        assert await db.fetch(query, []) == []
        many = await db.fetch_many([(query, (["a"],)), ("SELECT count(*) FROM item", ())])
        assert [[tuple(r) for r in rows] for rows in many] == [[("a",)], [(4,)]]
        assert await db.fetch_many([]) == []
    finally:
        await db.close()


class LoopWatch:
    """The longest the event loop went without running a 5 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.longest = max(self.longest, loop.time() - before)

    def stop(self) -> float:
        self.task.cancel()
        return self.longest


async def test_a_slow_read_never_blocks_the_loop(tmp_path: Path, database_url: str | None) -> None:
    db = await open_database(database_url, tmp_path / "x.sqlite")
    try:
        slow = (
            "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT count(*) FROM n"
        )
        watch = LoopWatch()
        started = time.monotonic()
        assert (await db.fetchrow(slow))[0] == 3_000_000  # type: ignore[index]
        assert time.monotonic() - started > 0.2  # slow enough to have blocked the loop inline
        assert watch.stop() < 0.1
    finally:
        await db.close()


async def test_reads_go_on_during_a_long_write_transaction(tmp_path: Path) -> None:
    db = await open_database(None, tmp_path / "x.sqlite", pool_size=2)
    other = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    try:
        await migrate(db, SCHEMA, "svc")
        await db.execute("INSERT INTO item (name) VALUES ('committed')")

        async def long_write(holding: asyncio.Event, release: asyncio.Event) -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO item (name) VALUES ('pending')")
                holding.set()
                await release.wait()

        holding, release = asyncio.Event(), asyncio.Event()
        writer = asyncio.create_task(long_write(holding, release))
        await holding.wait()
        # The transaction holds the write lock: reads answer at once, from committed data.
        for _ in range(20):
            started = time.monotonic()
            assert [r[0] for r in await db.fetch("SELECT name FROM item")] == ["committed"]
            assert time.monotonic() - started < 0.5
        release.set()
        await writer
        assert len(await db.fetch("SELECT name FROM item")) == 2

        # Another process holds the write lock: a transaction waits for it in a thread, and
        # the loop and the reads go on meanwhile.
        other.execute("BEGIN IMMEDIATE")
        watch = LoopWatch()
        holding, release = asyncio.Event(), asyncio.Event()
        waiting = asyncio.create_task(long_write(holding, release))
        await asyncio.sleep(0.3)
        assert not holding.is_set()
        assert len(await db.fetch("SELECT name FROM item")) == 2
        other.execute("COMMIT")
        await asyncio.wait_for(holding.wait(), 10)
        release.set()
        await waiting
        assert watch.stop() < 0.1
        assert len(await db.fetch("SELECT name FROM item")) == 3
    finally:
        other.close()
        await db.close()


async def test_a_transaction_with_work_between_its_statements(
    tmp_path: Path, database_url: str | None
) -> None:
    db = await open_database(database_url, tmp_path / "x.sqlite")
    try:
        await migrate(db, SCHEMA, "svc")

        async def add(tx: Executor, name: str) -> int:
            await tx.execute("INSERT INTO item (name) VALUES (?)", name)
            row = await tx.fetchrow("SELECT count(*) FROM item")
            assert row is not None
            if name == "bad":
                raise ValueError(name)
            return int(row[0])

        assert await db.run_transaction(lambda tx: add(tx, "a")) == 1
        with pytest.raises(ValueError):
            await db.run_transaction(lambda tx: add(tx, "bad"))
        assert await db.fetch("SELECT name FROM item") == [("a",)]

        async def waits(tx: Executor) -> None:
            await tx.execute("INSERT INTO item (name) VALUES (?)", "waited")
            await asyncio.sleep(0)

        if database_url is None:
            # On SQLite the body runs on a thread, where nothing but its statements may await.
            with pytest.raises(RuntimeError):
                await db.run_transaction(waits)
        else:
            await db.run_transaction(waits)
        rows = await db.fetch("SELECT name FROM item ORDER BY id")
        assert rows == ([("a",)] if database_url is None else [("a",), ("waited",)])
    finally:
        await db.close()


async def test_processes_starting_together_migrate_in_turn(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.new_database()
    dbs = [await open_database(url, Path("unused")) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(migrate(db, SCHEMA, "svc") for db in dbs))
        assert versions == [2, 2, 2, 2]
        assert await dbs[0].fetch("SELECT version FROM schema_version ORDER BY version") == [
            (1,),
            (2,),
        ]
    finally:
        for db in dbs:
            await db.close()


async def test_notifications_arrive_once_committed(postgres_cluster: PostgresCluster) -> None:
    db = await open_database(postgres_cluster.new_database(), Path("unused"))
    assert isinstance(db, PostgresDatabase)
    heard = asyncio.Event()
    payloads: list[str] = []

    def notified(payload: str) -> None:
        payloads.append(payload)
        heard.set()

    listener = await db.listen("things", notified)
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("SELECT pg_notify('things', 'rolled back')")
                raise RuntimeError
        await asyncio.sleep(0.3)
        assert not heard.is_set()
        async with db.transaction() as tx:
            await tx.execute("SELECT pg_notify(?, ?)", "things", "committed")
        await asyncio.wait_for(heard.wait(), 5)
        assert payloads == ["committed"]
    finally:
        await listener.close()
        await db.close()


async def test_a_session_is_let_go_soon_after_its_client_falls_silent(
    postgres_cluster: PostgresCluster,
) -> None:
    db = await open_database(postgres_cluster.new_database(), Path("unused"))
    assert isinstance(db, PostgresDatabase)
    session = await db.session()
    try:
        # Over TCP the server probes a silent client and ends its session (and its locks)
        # within about 25 s, rather than the system's two hours.
        settings = [
            await session.conn.fetchval(f"SHOW {name}")
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        ]
        assert settings == ["10", "5", "3"]
        await session.ping()
    finally:
        await session.close()
        await db.close()
