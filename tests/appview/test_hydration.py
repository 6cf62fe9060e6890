"""Batched hydration and the hot-path cache give the same views as the implementation that read
each kind of object with its own query (recorded in `views.json.gz`), on both engines, with the
cache cold, warm and disabled."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strata.appview.cache import HotCache
from strata.appview.records import index_record
from strata.appview.schema import MIGRATIONS
from strata.appview.views import FeedViews
from strata.database import Executor, migrate, open_database
from tests.appview import sample


async def index(tx: Executor, uri: str, cid: str, collection: str, record: Any, at: str) -> None:
    await index_record(tx, uri, cid, collection, record, at, set())


def first_difference(got: Any, want: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, for a readable failure."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want)):
            if key not in got or key not in want:
                return f"{path}/{key}: only in {'recorded' if key in want else 'ours'}"
            found = first_difference(got[key], want[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return f"{path}: {len(got)} items, recorded {len(want)}"
        for n, (a, b) in enumerate(zip(got, want, strict=True)):
            found = first_difference(a, b, f"{path}[{n}]")
            if found:
                return found
        return None
    return None if got == want else f"{path}: {got!r}, recorded {want!r}"


async def test_views_match_the_recorded_ones(tmp_path: Path, database_url: str | None) -> None:
    recorded = json.loads(gzip.decompress(sample.RECORDED.read_bytes()))
    db = await open_database(database_url, tmp_path / "index.sqlite")
    try:
        await migrate(db, MIGRATIONS, "appview")
        uris = await sample.build(db, index)
        cache = HotCache()

        async def snapshot(make_cache: Callable[[], HotCache]) -> Any:
            return await sample.views(db, uris, lambda viewer: FeedViews(db, make_cache(), viewer))

        for label, make_cache in (("cold", lambda: cache), ("warm", lambda: cache),
                                  ("no cache", lambda: HotCache(0))):  # fmt: skip
            got = await snapshot(make_cache)
            assert first_difference(got, recorded) is None, (label, first_difference(got, recorded))
        assert cache.size > 0
    finally:
        await db.close()
