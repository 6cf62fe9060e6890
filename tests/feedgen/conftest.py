"""The `database` fixture: each storage test runs on SQLite and on a fresh Postgres database
(see `database_url` in the top-level conftest)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata.database import Database, migrate, open_database
from strata.feedgen.schema import MIGRATIONS


@dataclass
class DatabaseUnderTest:
    """Where a test keeps the feed generator's tables."""

    url: str | None
    path: Path

    @contextlib.asynccontextmanager
    async def location(self) -> AsyncIterator[str | None]:
        """The `--database-url` of an empty database (None: SQLite at `path`)."""
        yield self.url

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Database]:
        """The feed generator's tables, migrated."""
        db = await open_database(self.url, self.path)
        try:
            await migrate(db, MIGRATIONS, "feedgen")
            yield db
        finally:
            await db.close()


@pytest.fixture
def database(database_url: str | None, tmp_path: Path) -> DatabaseUnderTest:
    return DatabaseUnderTest(database_url, tmp_path / "feedgen.sqlite")
