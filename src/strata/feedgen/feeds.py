"""The built-in feeds: what's hot, newest posts in a language, and the viewer's follows."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

from strata.database import Executor
from strata.feedgen.algorithm import (
    Algorithm,
    BadCursor,
    FeedItem,
    Page,
    ViewerRequired,
    decode_cursor,
    encode_cursor,
)

HOUR_MS: Final = 3_600_000
NEWEST: Final = (1 << 62, "")
"""A keyset position before every real one."""


class HotFeed:
    """Top-level posts of the last `window_hours`, ranked Hacker-News style:
    (likes + 2 * reposts + 1) / (age in hours + 2) ^ `gravity`.

    A page's cursor is `<moment>:<offset>`: the offset into the ranking as it stood at that
    moment (millisecond clock). Later pages use the ranking of that same moment, counting only
    what had been indexed by then, so likes arriving while someone scrolls do not reorder the
    pages (and repeat posts). Recent rankings are kept in memory, so a later page costs little;
    a first page reuses a ranking up to `reuse_for` seconds old.
    """

    rkey = "hot"
    display_name = "What's Hot"
    description = "Popular posts of the last two days: likes and reposts, fading with age."

    def __init__(
        self,
        window_hours: float = 48.0,
        gravity: float = 1.8,
        max_ranked: int = 3000,
        reuse_for: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_ms = int(window_hours * HOUR_MS)
        self.gravity = gravity
        self.max_ranked = max_ranked
        self.reuse_for_ms = int(reuse_for * 1000)
        self.clock = clock
        self._rankings: OrderedDict[int, list[str]] = OrderedDict()

    async def skeleton(
        self, db: Executor, viewer: str | None, limit: int, cursor: str | None
    ) -> Page:
        if cursor is None:
            now = int(self.clock() * 1000)
            latest = max(self._rankings, default=None)
            # A burst of first pages shares one ranking instead of each computing its own.
            moment = latest if latest is not None and now - latest < self.reuse_for_ms else now
            offset = 0
        else:
            moment, offset = self._parse(cursor)
        ranking = await self._ranking(db, moment)
        page = ranking[offset : offset + limit]
        end = offset + len(page)
        return page, f"{moment}:{end}" if end < len(ranking) else None

    @staticmethod
    def _parse(cursor: str) -> tuple[int, int]:
        moment, sep, offset = cursor.partition(":")
        if not sep or not all(
            x.isascii() and x.isdigit() and len(x) <= 18 for x in (moment, offset)
        ):
            raise BadCursor("malformed cursor")
        return int(moment), int(offset)

    async def _ranking(self, db: Executor, moment: int) -> list[str]:
        ranking = self._rankings.get(moment)
        if ranking is not None:
            self._rankings.move_to_end(moment)
            return ranking
        rows = await db.fetch(
            "SELECT p.uri, p.sort_at, "
            "(SELECT count(*) FROM likes l WHERE l.subject = p.uri AND l.indexed_at <= ?), "
            "(SELECT count(*) FROM repost r WHERE r.subject = p.uri AND r.indexed_at <= ?) "
            "FROM post p WHERE p.sort_at > ? AND p.indexed_at <= ? AND p.is_reply = 0",
            moment, moment, moment - self.window_ms, moment,
        )  # fmt: skip

        def score(row: tuple[str, int, int, int]) -> tuple[float, int, str]:
            uri, at, likes, reposts = row
            age_hours = max(0, moment - at) / HOUR_MS
            return (-(likes + 2 * reposts + 1) / (age_hours + 2) ** self.gravity, -at, uri)

        ranked = sorted(((str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows), key=score)
        ranking = [row[0] for row in ranked[: self.max_ranked]]
        self._rankings[moment] = ranking
        while len(self._rankings) > 8:
            self._rankings.popitem(last=False)
        return ranking


class LanguageFeed:
    """The newest top-level posts that declare a language (`en` also matches `en-GB`)."""

    def __init__(self, language: str) -> None:
        self.language = language.lower()
        self.rkey = f"lang-{self.language}"
        self.display_name = f"Newest in {self.language}"[:24]
        self.description = f"The newest posts written in {language}, as their authors tag them."

    async def skeleton(
        self, db: Executor, viewer: str | None, limit: int, cursor: str | None
    ) -> Page:
        at, uri = decode_cursor(cursor) if cursor is not None else NEWEST
        rows = await db.fetch(
            "SELECT l.uri, l.sort_at FROM post_lang l JOIN post p ON p.uri = l.uri "
            "WHERE l.lang = ? AND p.is_reply = 0 "
            "AND (l.sort_at < ? OR (l.sort_at = ? AND l.uri < ?)) "
            "ORDER BY l.sort_at DESC, l.uri DESC LIMIT ?",
            self.language, at, at, uri, limit,
        )  # fmt: skip
        last = encode_cursor(int(rows[-1][1]), str(rows[-1][0])) if len(rows) == limit else None
        return [str(row[0]) for row in rows], last


class FollowingFeed:
    """Posts (replies too) and reposts by the accounts the viewer follows, newest first."""

    rkey = "following"
    display_name = "Following"
    description = "Everything the accounts you follow post and repost, newest first."

    async def skeleton(
        self, db: Executor, viewer: str | None, limit: int, cursor: str | None
    ) -> Page:
        if viewer is None:
            raise ViewerRequired("this feed is personal: sign the request as its viewer")
        at, key = decode_cursor(cursor) if cursor is not None else NEWEST
        # `item` orders the page: the post's URI, or the repost's for a reposted post.
        rows = await db.fetch(
            "SELECT post, repost, sort_at, item FROM ("
            " SELECT uri AS post, NULL AS repost, sort_at, uri AS item FROM post"
            " WHERE author IN (SELECT subject FROM follow WHERE creator = ?)"
            " UNION ALL"
            " SELECT subject AS post, uri AS repost, sort_at, uri AS item FROM repost"
            " WHERE creator IN (SELECT subject FROM follow WHERE creator = ?)"
            ") AS items WHERE sort_at < ? OR (sort_at = ? AND item < ?) "
            "ORDER BY sort_at DESC, item DESC LIMIT ?",
            viewer, viewer, at, at, key, limit,
        )  # fmt: skip
        items = [FeedItem(str(row[0]), None if row[1] is None else str(row[1])) for row in rows]
        last = encode_cursor(int(rows[-1][2]), str(rows[-1][3])) if len(rows) == limit else None
        return items, last


DEFAULT_LANGUAGES: Final = ("en",)


def builtin_algorithms(languages: Iterable[str] = DEFAULT_LANGUAGES) -> list[Algorithm]:
    """`hot`, `following` and one `lang-<code>` feed per language (duplicates dropped)."""
    out: list[Algorithm] = [HotFeed(), FollowingFeed()]
    seen: set[str] = set()
    for language in languages:
        if language.lower() not in seen:
            seen.add(language.lower())
            out.append(LanguageFeed(language))
    return out
