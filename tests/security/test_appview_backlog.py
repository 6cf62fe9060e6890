"""An account that keeps committing while the AppView fetches its whole repository cannot
make the AppView hold its commits without bound."""

from __future__ import annotations

from pathlib import Path

from strata.appview.indexer import MAX_WAITING_BYTES, Indexer
from strata.appview.schema import MIGRATIONS
from strata.core.frames import Frame
from strata.database import SqliteDatabase, migrate

DID = "did:plc:floodfloodfloodfloodfloo"


async def test_commits_held_for_a_fetch_are_bounded(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "index.sqlite")
    await migrate(db, MIGRATIONS, "appview")
    indexer = Indexer(db, resolver=None, session=None)
    try:
        indexer.waiting[DID] = []  # its repository is being fetched
        block = b"\x00" * (1 << 20)
        frames = [
            Frame(1, "#commit", {"repo": DID, "rev": f"3k2aaaaaa{i:04d}", "since": None,
                                 "ops": [], "blocks": block})
            for i in range(4 * (MAX_WAITING_BYTES >> 20))
        ]  # fmt: skip
        await indexer.handle_batch("http://relay", list(enumerate(frames)))
        held = sum(len(body["blocks"]) for body in indexer.waiting[DID])
        assert held <= MAX_WAITING_BYTES
        # What was dropped is not lost: the repository is fetched again once this fetch ends.
        assert DID in indexer.overflowed
    finally:
        await indexer.stop()
        await db.close()
