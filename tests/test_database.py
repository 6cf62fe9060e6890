"""The shared SQL layer: placeholders and schemas translated for Postgres, migrations applied
once, and one database per service."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.database import WrongDatabase, migrate, open_database, postgres_ddl, postgres_sql

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
