"""The interface of a feed algorithm, for the built-in feeds and for your own.

An algorithm is any object with a record key, a display name, a description and an async
`skeleton` method. It reads the feed generator's tables (listed in `strata.feedgen.schema`)
through `db`, which runs the same `?`-placeholder SQL on SQLite and on Postgres:

    from strata.feedgen.algorithm import decode_cursor, encode_cursor

    class Cats:
        rkey = "cats"
        display_name = "Cats"
        description = "Newest posts by the cat accounts."

        async def skeleton(self, db, viewer, limit, cursor):
            before = decode_cursor(cursor) if cursor else (1 << 62, "")
            rows = await db.fetch(
                "SELECT uri, sort_at FROM post WHERE author IN (?, ?) "
                "AND (sort_at < ? OR (sort_at = ? AND uri < ?)) "
                "ORDER BY sort_at DESC, uri DESC LIMIT ?",
                "did:plc:cat1", "did:plc:cat2", before[0], before[0], before[1], limit,
            )
            next_cursor = encode_cursor(rows[-1][1], rows[-1][0]) if len(rows) == limit else None
            return [row[0] for row in rows], next_cursor

and runs with `strata feedgen --algorithm mymodule:Cats` (an instance, or a class or function
that makes one without arguments). The feed is then `at://<publisher>/app.bsky.feed.generator/cats`.

`skeleton` raises `BadCursor` for a cursor it cannot read (the caller gets 400) and
`ViewerRequired` when the feed is personal and the request carries no verified viewer (401).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from strata.core.errors import InvalidSyntax
from strata.core.syntax import validate_record_key
from strata.database import Executor


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One post of a feed page; `repost` is the at:// URI of the repost that brought it, when
    the post is shown because someone reposted it."""

    post: str
    repost: str | None = None

    def view(self) -> dict[str, Any]:
        """The item as `app.bsky.feed.defs#skeletonFeedPost`."""
        out: dict[str, Any] = {"post": self.post}
        if self.repost is not None:
            out["reason"] = {
                "$type": "app.bsky.feed.defs#skeletonReasonRepost",
                "repost": self.repost,
            }
        return out


Page = tuple[Sequence[str | FeedItem], str | None]
"""What `skeleton` returns: the page's posts (at:// URIs or `FeedItem`s) and the cursor of the
next page, None on the last one."""


class Algorithm(Protocol):
    """A feed: what `app.bsky.feed.getFeedSkeleton` serves for one record key."""

    @property
    def rkey(self) -> str:
        """The record key of the feed's `app.bsky.feed.generator` record, e.g. `hot`."""
        ...

    @property
    def display_name(self) -> str:
        """A short name for the record (at most 24 characters)."""
        ...

    @property
    def description(self) -> str:
        """A sentence or two for the record."""
        ...

    async def skeleton(
        self, db: Executor, viewer: str | None, limit: int, cursor: str | None
    ) -> Page:
        """At most `limit` posts after `cursor` (None: from the top), for `viewer` (the DID of
        the verified caller, or None when the request was anonymous)."""
        ...


class BadCursor(ValueError):
    """The cursor was not made by this feed (answered with 400 InvalidRequest)."""


class ViewerRequired(Exception):
    """The feed depends on who is asking and the request did not say (answered with 401)."""


CURSOR_SEPARATOR: Final = "::"


def encode_cursor(sort_at: int, uri: str) -> str:
    """A keyset cursor: the position of the last item of a page ordered by (sort_at, uri)."""
    return f"{sort_at}{CURSOR_SEPARATOR}{uri}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (sort_at, uri) of an `encode_cursor` cursor; `BadCursor` for anything else."""
    at, sep, uri = cursor.partition(CURSOR_SEPARATOR)
    if not sep or not uri.startswith("at://") or not at.isascii() or not at.isdigit():
        raise BadCursor("malformed cursor")
    if len(at) > 18:
        raise BadCursor("cursor out of range")
    return int(at), uri


class AlgorithmError(Exception):
    """An `--algorithm` that cannot be loaded or is not an algorithm."""


def check_algorithm(candidate: Any, origin: str) -> Algorithm:
    """`candidate` if it has everything an `Algorithm` needs; `AlgorithmError` naming `origin`."""
    for name in ("rkey", "display_name", "description"):
        if not isinstance(getattr(candidate, name, None), str):
            raise AlgorithmError(f"{origin}: {name} must be a string")
    skeleton = getattr(candidate, "skeleton", None)
    if not inspect.iscoroutinefunction(skeleton):
        raise AlgorithmError(f"{origin}: skeleton must be an async method")
    try:
        validate_record_key(candidate.rkey)
    except InvalidSyntax as exc:
        raise AlgorithmError(f"{origin}: rkey {candidate.rkey!r} is not a record key") from exc
    algorithm: Algorithm = candidate
    return algorithm


def load_algorithm(spec: str) -> Algorithm:
    """The algorithm named by `module:attr`: an instance, or a class or function that makes one
    when called without arguments."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AlgorithmError(f"{spec!r}: expected module:attribute")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise AlgorithmError(f"{spec}: cannot import {module_name}: {exc}") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AlgorithmError(f"{spec}: {module_name} has no attribute {attr}") from None
    if inspect.isclass(target) or (callable(target) and not hasattr(target, "skeleton")):
        target = target()
    return check_algorithm(target, spec)
