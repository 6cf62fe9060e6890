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
from strata.database import Database, Query

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


def _candidates(db: Database, query: PostQuery, filters: PostFilters, below: int) -> Query:
    """The most recent `CANDIDATES` text matches below document `below` (of the author, when
    there is one: their posts are walked, not everyone's)."""
    if db.dialect == "sqlite":
        sql = "SELECT rowid AS id FROM post_search WHERE post_search MATCH ? AND rowid < ?"
        args: list[object] = [fts5_match(query.include, query.exclude), below]
        if filters.author is not None:
            sql += (
                " AND rowid IN (SELECT d.id FROM post p JOIN post_search_doc d ON d.uri = p.uri "
                "WHERE p.creator = ?)"
            )
            args.append(filters.author)
        return f"{sql} ORDER BY rowid DESC LIMIT {CANDIDATES}", args
    sql = "SELECT id FROM post_search_doc WHERE search @@ to_tsquery('simple', ?) AND id < ?"
    args = [ts_query(query.include, query.exclude), below]
    if filters.author is not None:
        sql += " AND uri IN (SELECT uri FROM post WHERE creator = ?)"
        args.append(filters.author)
    return f"{sql} ORDER BY id DESC LIMIT {CANDIDATES}", args


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
    candidates, candidate_args = _candidates(db, query, filters, below)
    where, where_args = filters.sql()
    counts = "LEFT JOIN record_counts n ON n.uri = d.uri " if top else ""
    matches = (
        f"FROM ({candidates}) c JOIN post_search_doc d ON d.id = c.id "
        f"JOIN post p ON p.uri = d.uri {counts}JOIN actor a ON a.did = p.creator "
        f"WHERE a.status = 'active'{where}"
    )
    args = [*candidate_args, *where_args]
    if top:
        offset = position or 0
        page, total = await db.fetch_many(
            [
                (
                    f"SELECT d.uri {matches} ORDER BY "
                    "coalesce(n.likes, 0) + coalesce(n.reposts, 0) DESC, d.id DESC "
                    "LIMIT ? OFFSET ?",
                    [*args, limit, offset],
                ),
                (f"SELECT count(*) {matches}", args),
            ]
        )
        after = offset + len(page)
        return [r[0] for r in page], str(after) if page and after < int(total[0][0]) else None
    page, bounds = await db.fetch_many(
        [
            (
                f"SELECT d.uri, d.id {matches} ORDER BY d.id DESC LIMIT ?",
                [*args, limit],
            ),
            (f"SELECT count(*), min(id) FROM ({candidates}) c", candidate_args),
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
