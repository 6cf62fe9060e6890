"""What every AppView handler shares: the index, identity, the caller, and page cursors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from strata.appview.cache import HotCache
from strata.appview.feedgen_client import Feedgens
from strata.appview.invalidation import Announcer
from strata.appview.labels import parse_accepted
from strata.appview.views import Views
from strata.core.errors import InvalidSyntax
from strata.core.jwt import JwtError, service_jwt_issuer, verify_service_jwt
from strata.core.syntax.dates import format_millis, parse_millis
from strata.database import Database, Row
from strata.identity import IdentityResolver
from strata.identity.errors import IdentityError
from strata.net.errors import XrpcError, invalid_request
from strata.net.xrpc import Call

ANY_AUDIENCE = frozenset({"app.bsky.feed.getFeed"})
"""Methods whose service token is addressed to someone else: the PDS signs `getFeed` for the
feed generator, and the AppView passes the token on."""


@dataclass
class AppContext:
    db: Database
    resolver: IdentityResolver
    session: aiohttp.ClientSession
    """For feed generators, which DID documents name: public addresses only, but in
    development."""
    did: str
    """The AppView's own DID: the audience of the service tokens it accepts."""
    skeleton_timeout: float = 10.0
    """How long a feed generator has to answer, as the reference AppView allows."""
    feed_fallbacks: dict[str, str] = field(default_factory=dict)
    """For a feed (at:// URI), the feed to serve when its generator fails and no recent
    skeleton of its own is remembered."""
    serve_stale_for: float = 6 * 3600.0
    """How old a remembered skeleton may be when it is served for a failing generator."""
    cache: HotCache = field(default_factory=HotCache)
    """Views' parts that every timeline repeats; the indexer drops what it changes."""
    announce: Announcer = field(default_factory=lambda: Announcer(shared=False))
    """Tells the other workers' caches what a transaction changed."""
    labelers: tuple[str, ...] = ()
    """The labelers whose labels views carry when a request names none."""
    feedgens: Feedgens = field(init=False)

    def __post_init__(self) -> None:
        self.feedgens = Feedgens(self.serve_stale_for)

    def views(self, kind: type[V], call: Call[Any], viewer: str | None = None) -> V:
        """Views for `call`'s viewer (or `viewer`), carrying the labels of the labelers the
        request accepts (`atproto-accept-labelers`, else the AppView's own); the request
        notes them for its `atproto-content-labelers` answer."""
        labelers, redacting = parse_accepted(
            call.request.headers.get("atproto-accept-labelers")
        ) or (
            self.labelers,
            frozenset(),
        )
        call.request[ACCEPTED_KEY] = (labelers, redacting)
        return kind(self.db, self.cache, viewer or call.auth, labelers, redacting)


ACCEPTED_KEY = web.RequestKey("strata_accepted_labelers", tuple)
"""The request's labelers and those it redacts with, as its views applied them."""
V = TypeVar("V", bound=Views)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise XrpcError(401, "AuthMissing", "Authorization header must be a Bearer token")
    return token.strip()


def viewer_verifier(context: AppContext, required: bool = False) -> Any:
    """A verifier giving the DID of the account that signed the call's service token (None when
    there is no token and `required` is False)."""

    async def verify(request: web.Request, nsid: str) -> str | None:
        token = bearer_token(request)
        if token is None:
            if required:
                raise XrpcError(401, "AuthMissing", "Authentication Required")
            return None
        try:
            issuer = service_jwt_issuer(token)
            document = await context.resolver.resolve_did(issuer)
            key = document.value.signing_key()
            if key is None:
                raise JwtError("missing or bad key in did doc", "BadJwtSignature")
            audience = None if nsid in ANY_AUDIENCE else context.did
            lxm = "app.bsky.feed.getFeedSkeleton" if nsid in ANY_AUDIENCE else nsid
            verify_service_jwt(token, key, audience, lxm, time.time())
        except JwtError as exc:
            raise XrpcError(401, exc.name, str(exc)) from exc
        except IdentityError as exc:
            raise XrpcError(401, "BadJwtIss", f"could not resolve the token issuer: {exc}") from exc
        return issuer

    return verify


def page(body: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    """A list answer, with its cursor when there may be more."""
    if cursor is not None:
        body["cursor"] = cursor
    return body


def page_cursor(sort_at: str, key: str) -> str:
    """An opaque page cursor: the sort time in milliseconds and the row's unique key."""
    return f"{parse_millis(sort_at)}::{key}"


def read_cursor(params: dict[str, Any]) -> tuple[str, str]:
    """The (sort_at, key) a page starts below; the top when there is no cursor."""
    cursor = params.get("cursor")
    if cursor is None or cursor == "":
        return "9999-12-31T23:59:59.999Z", ""
    millis, sep, key = str(cursor).partition("::")
    try:
        if not sep or not millis.isdigit() or len(millis) > 15 or not key:
            raise ValueError
        return format_millis(int(millis)), key
    except (ValueError, OverflowError, OSError, InvalidSyntax):
        raise invalid_request("Malformed cursor") from None


async def write(db: Database, sql: str, *args: Any) -> None:
    """One statement, in a transaction of its own (the viewer's private state: mutes,
    bookmarks, preferences)."""
    async with db.transaction() as tx:
        await tx.execute(sql, *args)


def read_offset(params: dict[str, Any]) -> int:
    """How many results a page skips, from its cursor (for answers ranked, not in time order)."""
    cursor = params.get("cursor")
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise invalid_request("Malformed cursor")
    return int(cursor)


async def newest_first(
    db: Database, table: str, column: str, value: str, other: str, params: dict[str, Any]
) -> tuple[list[Row], str | None]:
    """One page of `table`'s rows whose `column` is `value`, newest first, after the params'
    cursor: `(uri, sort_at, other)` each, and the next page's cursor when the page is full."""
    limit = params.get("limit", 50)
    before, key = read_cursor(params)
    rows = await db.fetch(
        f"SELECT uri, sort_at, {other} FROM {table} WHERE {column} = ? "
        "AND (sort_at < ? OR (sort_at = ? AND uri < ?)) ORDER BY sort_at DESC, uri DESC LIMIT ?",
        value, before, before, key, limit,
    )  # fmt: skip
    full = bool(rows) and len(rows) == limit
    return rows, page_cursor(rows[-1][1], rows[-1][0]) if full else None


async def resolve_actor(context: AppContext, actor: str) -> str:
    """The DID of an indexed account named by DID or handle."""
    column = "did" if actor.startswith("did:") else "handle"
    row = await context.db.fetchrow(
        f"SELECT did, status FROM actor WHERE {column} = ?",
        actor.lower() if column == "handle" else actor,
    )
    if row is None:
        raise invalid_request("Profile not found")
    if row[1] == "takendown":
        raise XrpcError(400, "AccountTakedown", "Account has been suspended")
    if row[1] != "active":
        raise XrpcError(400, "AccountDeactivated", "Account is deactivated")
    return str(row[0])
