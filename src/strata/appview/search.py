"""Full-text search of posts and accounts: SQLite FTS5 and Postgres `tsvector` over GIN.

Both engines index runs of letters and digits, lower-cased (see `strata.appview.schema`), so a
query is cut the same way and matches the same posts whatever the engine: words must all occur,
a quoted phrase must occur as written, `-word` must not occur, and punctuation (`%`, `_`, `.`)
separates words rather than acting as a wildcard. `from:handle` (or `from:me`) keeps one
author's posts.

A page never reads more than `CANDIDATES` matches of the text: "latest" walks the matches from
the most recently indexed down, and its cursor says where the next page starts, even when the
filters (author, language, dates) kept fewer posts than asked for; "top" ranks that many of the
most recent matches by likes and reposts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from strata.core.errors import InvalidSyntax
from strata.core.syntax import format_datetime, parse_datetime
from strata.database import Database

CANDIDATES: Final = 2_000
"""Text matches a page of results reads at most."""
ACTOR_CANDIDATES: Final = 1_000
"""Accounts whose handle or name match that a search ranks, at most."""

_TOKEN = re.compile(r"[^\W_]+")
_PART = re.compile(r'(-?)(?:"([^"]*)"?|(\S+))')
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadQuery(ValueError):
    """A search parameter that cannot be used (a date that is not one, say)."""


def tokens(text: str) -> list[str]:
    """The words of `text` as both engines index them: runs of letters and digits, lower-cased."""
    return _TOKEN.findall(text.lower())


@dataclass
class PostQuery:
    """A post search: phrases that must and must not occur, and the author named in `q`."""

    include: list[list[str]] = field(default_factory=list)
    exclude: list[list[str]] = field(default_factory=list)
    author: str | None = None
    """`from:` in the query: a handle, a DID or `me`."""


def parse_post_query(q: str) -> PostQuery:
    """`q` as words, "phrases", -exclusions and `from:`."""
    query = PostQuery()
    for match in _PART.finditer(q):
        negated, quoted, bare = match.groups()
        text = quoted if quoted is not None else bare
        if quoted is None and not negated and text.lower().startswith("from:") and len(text) > 5:
            query.author = text[5:].lstrip("@")
            continue
        words = tokens(text)
        if words:
            (query.exclude if negated else query.include).append(words)
    return query


def fts5_match(include: list[list[str]], exclude: list[list[str]], prefix: bool = False) -> str:
    """An FTS5 query: each phrase quoted (so nothing a user types is FTS syntax), all of
    `include`, none of `exclude`; with `prefix`, each phrase's last word may continue."""
    star = " *" if prefix else ""
    expression = " AND ".join(f'"{" ".join(words)}"{star}' for words in include)
    for words in exclude:
        expression = f'({expression}) NOT "{" ".join(words)}"'
    return expression


def ts_query(include: list[list[str]], exclude: list[list[str]], prefix: bool = False) -> str:
    """The same query for Postgres `to_tsquery('simple', ...)`."""

    def phrase(words: list[str], last_prefix: bool) -> str:
        quoted = [f"'{w}'" for w in words]
        if last_prefix:
            quoted[-1] += ":*"
        return "(" + " <-> ".join(quoted) + ")"

    parts = [phrase(words, prefix) for words in include]
    parts += ["!" + phrase(words, False) for words in exclude]
    return " & ".join(parts)


def search_time(value: str | None, name: str) -> str | None:
    """`since`/`until`: a datetime, or a date (its midnight, UTC), in the index's form."""
    if not value:
        return None
    text = f"{value}T00:00:00Z" if _DATE.fullmatch(value) else value
    try:
        return format_datetime(parse_datetime(text))
    except (InvalidSyntax, ValueError):
        raise BadQuery(f"{name} must be a datetime or a date (YYYY-MM-DD)") from None


@dataclass
class PostFilters:
    """What the posts a search finds must also be: by an author, in a language, in a time
    window (on the posts' sort time)."""

    author: str | None = None
    lang: str | None = None
    since: str | None = None
    until: str | None = None

    def sql(self) -> tuple[str, list[str]]:
        conditions, args = [], []
        if self.author is not None:
            conditions.append("p.creator = ?")
            args.append(self.author)
        if self.lang is not None:
            conditions.append("((',' || p.langs || ',') LIKE ? OR (',' || p.langs || ',') LIKE ?)")
            args += [f"%,{self.lang.lower()},%", f"%,{self.lang.lower()}-%"]
        if self.since is not None:
            conditions.append("p.sort_at >= ?")
            args.append(self.since)
        if self.until is not None:
            conditions.append("p.sort_at < ?")
            args.append(self.until)
        return "".join(f" AND {c}" for c in conditions), args


def _matching(
    db: Database, query: PostQuery, filters: PostFilters
) -> tuple[str, str, str, list[object]]:
    """The search index's table (aliased `s`), its document id column, and the condition (with
    its arguments) that a document matches the text, and is the author's when there is one."""
    if db.dialect == "sqlite":
        condition = "post_search MATCH ?"
        args: list[object] = [fts5_match(query.include, query.exclude)]
        if filters.author is not None:
            condition += (
                " AND s.rowid IN (SELECT d.id FROM post p JOIN post_search_doc d ON d.uri = p.uri "
                "WHERE p.creator = ?)"
            )
            args.append(filters.author)
        return "post_search s", "s.rowid", condition, args
    condition = "s.search @@ to_tsquery('simple', ?)"
    args = [ts_query(query.include, query.exclude)]
    if filters.author is not None:
        condition += " AND s.uri IN (SELECT uri FROM post WHERE creator = ?)"
        args.append(filters.author)
    return "post_search_doc s", "s.id", condition, args


async def search_posts(
    db: Database,
    query: PostQuery,
    filters: PostFilters,
    sort: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[str], str | None]:
    """A page of the URIs of posts by active accounts that match, and the next page's cursor."""
    if not query.include:
        return [], None
    position = _cursor(cursor)
    top = sort == "top"
    below = (1 << 62) if top or position is None else position
    table, doc_id, condition, text_args = _matching(db, query, filters)
    # The window a page may read: the most recent `CANDIDATES` matches below the cursor.
    window = (
        f"SELECT {doc_id} AS id FROM {table} WHERE {condition} AND {doc_id} < ? "
        f"ORDER BY {doc_id} DESC LIMIT {CANDIDATES}"
    )
    window_args = [*text_args, below]
    where, where_args = filters.sql()
    joins = (
        f"JOIN post_search_doc d ON d.id = {doc_id} JOIN post p ON p.uri = d.uri "
        "JOIN actor a ON a.did = p.creator"
    )
    if top:
        offset = position or 0
        (page,) = await db.fetch_many(
            [
                (
                    f"SELECT d.uri FROM ({window}) w JOIN {table} ON {doc_id} = w.id {joins} "
                    f"LEFT JOIN record_counts n ON n.uri = d.uri "
                    f"WHERE a.status = 'active'{where} ORDER BY "
                    "coalesce(n.likes, 0) + coalesce(n.reposts, 0) DESC, d.id DESC "
                    "LIMIT ? OFFSET ?",
                    [*window_args, *where_args, limit + 1, offset],
                )
            ]
        )
        more = len(page) > limit
        return [r[0] for r in page[:limit]], str(offset + limit) if more else None
    # Latest: walk the window from the top and stop at the page's last post.
    page, bounds = await db.fetch_many(
        [
            (
                f"SELECT d.uri, {doc_id} FROM {table} {joins} WHERE {condition} "
                f"AND {doc_id} < ? AND {doc_id} >= (SELECT min(id) FROM ({window}) w) "
                f"AND a.status = 'active'{where} ORDER BY {doc_id} DESC LIMIT ?",
                [*text_args, below, *window_args, *where_args, limit],
            ),
            (f"SELECT count(*), min(id) FROM ({window}) w", window_args),
        ]
    )
    uris = [r[0] for r in page]
    if len(page) == limit:
        return uris, str(page[-1][1])
    read, lowest = int(bounds[0][0]), bounds[0][1]
    # Fewer than asked for: the filters kept few of the matches read; the next page starts
    # below the last match read, unless that was the last match there is.
    return uris, str(lowest) if read == CANDIDATES and lowest is not None else None


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise BadQuery("Malformed cursor")
    return int(cursor)


async def search_actors(db: Database, q: str, limit: int, offset: int) -> list[str]:
    """DIDs of active accounts whose handle or display name has words starting as `q`'s do:
    an exact handle first, then the most followed."""
    words = [tokens(word) for word in q.split()]
    include = [w for w in words if w]
    if not include:
        return []
    if db.dialect == "sqlite":
        candidates = (
            "SELECT rowid AS id FROM actor_search WHERE actor_search MATCH ? "
            f"ORDER BY rowid DESC LIMIT {ACTOR_CANDIDATES}"
        )
        expression = fts5_match(include, [], prefix=True)
    else:
        candidates = (
            "SELECT id FROM actor_search_doc WHERE search @@ to_tsquery('simple', ?) "
            f"ORDER BY id DESC LIMIT {ACTOR_CANDIDATES}"
        )
        expression = ts_query(include, [], prefix=True)
    rows = await db.fetch(
        f"SELECT d.did FROM ({candidates}) c JOIN actor_search_doc d ON d.id = c.id "
        "JOIN actor a ON a.did = d.did LEFT JOIN actor_counts n ON n.did = d.did "
        "WHERE a.status = 'active' AND a.handle IS NOT NULL "
        "ORDER BY CASE WHEN a.handle = ? THEN 0 ELSE 1 END, coalesce(n.followers, 0) DESC, "
        "a.handle LIMIT ? OFFSET ?",
        expression, q.strip().lower().lstrip("@"), limit, offset,
    )  # fmt: skip
    return [r[0] for r in rows]
