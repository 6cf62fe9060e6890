"""Whom to suggest following, which feeds, and who among an account's followers the viewer
knows, from the follow and like graph of the index.

Each query reads a bounded sample of the graph (the most recent `SAMPLE` follows or likes of
one account), so an account following or followed by millions costs the same as any other.
"""

from __future__ import annotations

from typing import Final

from strata.database import Database

SAMPLE: Final = 1_000
"""Follows (or likes) of one account a suggestion query reads, the most recent first."""
SIMILAR: Final = 10
"""Accounts `similar_accounts` suggests, as the reference's suggestions relative to an actor."""

FOLLOWS_OF_FOLLOWS: Final = (
    "WITH mine AS (SELECT subject FROM follow WHERE creator = ? "
    "ORDER BY sort_at DESC LIMIT ?) "
    "SELECT f.subject, count(*) AS n FROM follow f JOIN mine ON f.creator = mine.subject "
    "WHERE f.subject <> ? AND NOT EXISTS "
    "(SELECT 1 FROM follow g WHERE g.creator = ? AND g.subject = f.subject) "
    "GROUP BY f.subject ORDER BY n DESC, f.subject LIMIT ? OFFSET ?"
)
"""Accounts followed by those the viewer follows (the viewer's latest follows), that the
viewer does not follow, the most followed among them first: viewer, sample, viewer, viewer,
limit, offset."""

MOST_LIKED: Final = (
    "WITH liked AS (SELECT subject FROM likes WHERE creator = ? "
    "ORDER BY sort_at DESC LIMIT ?) "
    "SELECT p.creator, count(*) AS n FROM liked JOIN post p ON p.uri = liked.subject "
    "WHERE p.creator <> ? AND p.creator <> ? AND NOT EXISTS "
    "(SELECT 1 FROM follow g WHERE g.creator = ? AND g.subject = p.creator) "
    "GROUP BY p.creator ORDER BY n DESC, p.creator LIMIT ?"
)
"""The authors whose posts an account liked most (of its latest likes), that the viewer does
not follow: actor, sample, actor, viewer, viewer, limit."""

POPULAR_FOLLOWS: Final = (
    "WITH theirs AS (SELECT subject FROM follow WHERE creator = ? "
    "ORDER BY sort_at DESC LIMIT ?) "
    "SELECT theirs.subject FROM theirs LEFT JOIN actor_counts c ON c.did = theirs.subject "
    "WHERE theirs.subject <> ? AND theirs.subject <> ? AND NOT EXISTS "
    "(SELECT 1 FROM follow g WHERE g.creator = ? AND g.subject = theirs.subject) "
    "ORDER BY coalesce(c.followers, 0) DESC, theirs.subject LIMIT ?"
)
"""The accounts an account follows (its latest follows), the most followed first, that the
viewer does not follow: actor, sample, actor, viewer, viewer, limit."""

KNOWN_FOLLOWERS: Final = (
    "SELECT f.subject, f.creator FROM follow g JOIN follow f ON f.creator = g.subject "
    "WHERE g.creator = ? AND f.subject = ANY(?) ORDER BY f.sort_at DESC, f.uri DESC"
)
"""Followers of each of a list of accounts whom the viewer follows, the latest first (read
from the viewer's follows, however many followers the accounts have)."""


POPULAR_FEEDS: Final = (
    "SELECT g.uri FROM feed_generator g LEFT JOIN record_counts c ON c.uri = g.uri "
    "ORDER BY coalesce(c.likes, 0) DESC, g.uri LIMIT ? OFFSET ?"
)


async def popular_feeds(db: Database, limit: int, offset: int) -> tuple[list[str], str | None]:
    """A page of feed generators, the most liked first (the reference suggests feeds its
    operator picked; Strata has no such list), and the next page's cursor when it is full."""
    uris = [str(r[0]) for r in await db.fetch(POPULAR_FEEDS, limit, offset)]
    return uris, str(offset + len(uris)) if len(uris) == limit else None


async def follows_of_follows(db: Database, viewer: str, limit: int, offset: int) -> list[str]:
    """Accounts the viewer does not follow, ranked by how many of the accounts it follows
    follow them."""
    rows = await db.fetch(FOLLOWS_OF_FOLLOWS, viewer, SAMPLE, viewer, viewer, limit, offset)
    return [str(r[0]) for r in rows]


async def similar_accounts(db: Database, actor: str, viewer: str | None) -> list[str]:
    """Accounts like `actor`, as the reference's suggestions relative to an account: the
    authors it likes most, then the most followed accounts it follows; none that the viewer
    follows, nor the viewer or the actor."""
    me = viewer or ""
    liked = await db.fetch(MOST_LIKED, actor, SAMPLE, actor, me, me, SIMILAR)
    found = [str(r[0]) for r in liked]
    if len(found) < SIMILAR:
        popular = await db.fetch(POPULAR_FOLLOWS, actor, SAMPLE, actor, me, me, SIMILAR)
        found += [str(r[0]) for r in popular if r[0] not in found]
    return found[:SIMILAR]


async def known_followers(db: Database, viewer: str, subjects: list[str]) -> dict[str, list[str]]:
    """For each subject, its followers whom the viewer follows, the latest first."""
    known: dict[str, list[str]] = {subject: [] for subject in subjects}
    for subject, follower in await db.fetch(KNOWN_FOLLOWERS, viewer, subjects):
        known[subject].append(str(follower))
    return known
