"""Reading stored events for a consumer's cursor replay, where the caller waits for the rows.

`strata.net.firehose.serve_event_stream` reads replay pages synchronously, between two writes
to the consumer, so that nothing falls between the last page and the switch to live frames. On
SQLite that read is a query on a connection of its own (as readers of a WAL file never wait for
the writer). On Postgres the page is asked on a connection kept by a thread with its own event
loop, and the caller waits for its answer: a round trip on the database's network.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from strata.storage import connect_sqlite

T = TypeVar("T")

REPLAY_TIMEOUT: Final = 30.0
"""Seconds a replay page may take before the consumer's stream fails."""

_OLDEST: Final = "SELECT min(seq) FROM relay_seq"
_PAGE: Final = "SELECT seq, frame FROM relay_seq WHERE seq > {} ORDER BY seq LIMIT {}"


class ReplayReader(Protocol):
    """Stored events, read while the caller waits."""

    def oldest_seq(self) -> int | None: ...

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]: ...

    def close(self) -> None: ...


class SqliteReplay:
    """Replay pages read from the relay's SQLite file."""

    def __init__(self, path: Path) -> None:
        self.conn = connect_sqlite(path)
        self.conn.execute("PRAGMA query_only = 1")

    def oldest_seq(self) -> int | None:
        row = self.conn.execute(_OLDEST).fetchone()
        return None if row[0] is None else int(row[0])

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.conn.execute(_PAGE.format("?", "?"), (after, limit)).fetchall()
        return [(int(seq), bytes(frame)) for seq, frame in rows]

    def close(self) -> None:
        self.conn.close()


class PostgresReplay:
    """Replay pages asked of Postgres on a thread's own loop and connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay-replay")
        self._thread.daemon = True
        self._thread.start()
        self._conn: Any = None

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(REPLAY_TIMEOUT)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.url)
        rows: list[Any] = await self._conn.fetch(sql, *args)
        return rows

    def oldest_seq(self) -> int | None:
        row = self._wait(self._fetch(_OLDEST))[0]
        return None if row[0] is None else int(row[0])

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self._wait(self._fetch(_PAGE.format("$1", "$2"), after, limit))
        return [(int(seq), bytes(frame)) for seq, frame in rows]

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def close(self) -> None:
        self._wait(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def replay_reader(database_url: str | None, sqlite_path: Path) -> ReplayReader:
    """The reader for the relay's tables in Postgres at `database_url`, or in SQLite."""
    if database_url is None:
        return SqliteReplay(sqlite_path)
    return PostgresReplay(database_url)
