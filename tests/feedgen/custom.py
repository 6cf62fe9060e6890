"""A feed written against the public algorithm interface, as an operator would write one, and
loaded with `--algorithm tests.feedgen.custom:MyLikes`."""

from __future__ import annotations

from strata.database import Executor
from strata.feedgen.algorithm import Page, ViewerRequired, decode_cursor, encode_cursor


class MyLikes:
    """The posts the viewer liked, most recently liked first."""

    rkey = "my-likes"
    display_name = "My likes"
    description = "Posts you liked, most recent first."

    async def skeleton(
        self, db: Executor, viewer: str | None, limit: int, cursor: str | None
    ) -> Page:
        if viewer is None:
            raise ViewerRequired("sign in to see your likes")
        at, uri = decode_cursor(cursor) if cursor else (1 << 62, "")
        rows = await db.fetch(
            "SELECT subject, indexed_at, uri FROM likes WHERE creator = ? "
            "AND (indexed_at < ? OR (indexed_at = ? AND uri < ?)) "
            "ORDER BY indexed_at DESC, uri DESC LIMIT ?",
            viewer, at, at, uri, limit,
        )  # fmt: skip
        last = encode_cursor(rows[-1][1], rows[-1][2]) if len(rows) == limit else None
        return [row[0] for row in rows], last


NOT_AN_ALGORITHM = object()
