"""Calling a feed generator: find it through its DID, ask for a skeleton, check the answer.

A feed generator is someone else's server. Its answer is treated as untrusted input: a timeout,
an error or a malformed body is a clear upstream error, never a crash, and entries that are
not post URIs are dropped. Each generator's endpoint has its own circuit breaker and bulkhead
(`Feedgens`), so one that hangs costs its own callers a timeout, then fails fast, and never
takes every worker. The last good skeleton of each page is remembered and served, marked
stale, while the generator fails.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from prometheus_client import Counter

from strata.appview.views import FeedItem
from strata.core.errors import InvalidSyntax
from strata.core.syntax import AtUri
from strata.identity.errors import IdentityError, ResolutionFailed
from strata.net.bounded import read_at_most
from strata.net.errors import XrpcError
from strata.net.logs import log_event
from strata.net.upstream import STALE_ANSWERS, UpstreamRegistry, UpstreamUnavailable
from strata.resilience import Deadline, StaleCache

if TYPE_CHECKING:
    from strata.appview.context import AppContext

log = logging.getLogger("strata.appview.feedgen")

MAX_SKELETON_BYTES: Final = 1 << 20
REMEMBERED_SKELETONS: Final = 50_000
REMEMBERED_ITEMS: Final = 2_000_000
WAIT_WHEN_REMEMBERED: Final = 2.0
"""Seconds a generator is waited for when a remembered page of the feed can be served."""

SKELETON_CALLS = Counter(
    "strata_appview_skeleton_calls_total", "Feed generator calls by outcome", ["outcome"]
)


@dataclass
class Skeleton:
    items: list[FeedItem]
    cursor: str | None
    stale_seconds: float = 0.0


class GeneratorFailed(Exception):
    """The generator answered, but not usefully (an error status, garbage)."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Refused:
    """The generator's own client error (an unknown feed, a bad cursor): an answer, which
    the caller gets, not a failure of the generator."""

    error: str
    message: str


class Feedgens:
    """Every feed generator this AppView calls: a pool per endpoint, remembered skeletons."""

    def __init__(self, serve_stale_for: float) -> None:
        self.pools = UpstreamRegistry(
            "feedgen", timeout=10.0, max_in_flight=32, failure_threshold=3, reset_after=10.0
        )
        self.remembered: StaleCache[tuple[str, ...], Skeleton] = StaleCache(
            capacity=REMEMBERED_SKELETONS,
            fresh_for=0.0,
            serve_stale_for=serve_stale_for,
            weigh=lambda skeleton: len(skeleton.items) + 1,
            max_weight=REMEMBERED_ITEMS,
        )


async def generator_endpoint(context: AppContext, feed_did: str) -> str:
    """The `#bsky_fg` service endpoint in the feed generator's DID document."""
    try:
        document = await context.resolver.resolve_did(feed_did)
    except ResolutionFailed as exc:
        # Its DID document could not be fetched (a did:web on the generator's own host that
        # is down): a failure of the generator, so remembered pages can stand in.
        SKELETON_CALLS.labels("unreachable").inc()
        raise XrpcError(502, "UpstreamFailure", f"feed unavailable: {exc}") from exc
    except IdentityError as exc:
        raise XrpcError(400, "UnknownFeed", f"could not resolve feed generator {feed_did}") from exc
    endpoint = document.value.service_endpoint("bsky_fg", "BskyFeedGenerator")
    if endpoint is None:
        raise XrpcError(400, "UnknownFeed", f"{feed_did} has no feed generator service")
    return endpoint.rstrip("/")


async def generator_online(context: AppContext, feed_did: str) -> bool:
    """Whether the feed generator answers `describeFeedGenerator`."""
    try:
        endpoint = await generator_endpoint(context, feed_did)
        async with context.session.get(
            f"{endpoint}/xrpc/app.bsky.feed.describeFeedGenerator",
            timeout=aiohttp.ClientTimeout(total=3.0),
            allow_redirects=False,
        ) as response:
            return response.status == 200
    except (XrpcError, aiohttp.ClientError, OSError, TimeoutError):
        return False


async def fetch_skeleton(
    context: AppContext,
    feed_did: str,
    params: dict[str, str],
    authorization: str | None,
    deadline: Deadline,
) -> Skeleton:
    """`getFeedSkeleton` from the feed's generator, passing on the caller's service token."""
    endpoint = await generator_endpoint(context, feed_did)
    headers = {"Authorization": authorization} if authorization else {}

    async def ask(url: str) -> Skeleton | Refused:
        left = deadline.timeout(time.monotonic(), context.skeleton_timeout)
        async with context.session.get(
            f"{url}/xrpc/app.bsky.feed.getFeedSkeleton",
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=left),
            allow_redirects=False,
        ) as response:
            raw = await read_at_most(response.content, MAX_SKELETON_BYTES)
            return _answer(feed_did, response.status, raw)

    try:
        answer = await context.feedgens.pools.pool(endpoint).call(ask, deadline=deadline)
    except UpstreamUnavailable as exc:
        raise _failure(exc) from None
    if isinstance(answer, Refused):
        SKELETON_CALLS.labels("refused").inc()
        raise XrpcError(400, answer.error, answer.message)
    SKELETON_CALLS.labels("ok").inc()
    return answer


async def feed_skeleton(
    context: AppContext,
    feed_uri: str,
    feed_did: str,
    params: dict[str, str],
    authorization: str | None,
    viewer: str | None,
    deadline: Deadline,
) -> tuple[Skeleton, str | None]:
    """The skeleton of a page of `feed_uri`, and the fallback feed it came from if any.

    When the generator fails, the last good skeleton of the same page for the same viewer is
    served (its age in `stale_seconds`); without one, the feed's configured fallback feed is
    asked instead, without the viewer's token (it was signed for the other generator).
    """
    key = (feed_uri, viewer or "", params.get("limit", ""), params.get("cursor", ""))
    remembered = context.feedgens.remembered
    if remembered.get(key, time.monotonic()) is not None:
        # With a page to fall back on, a generator that hangs is not waited for long.
        deadline = Deadline(min(deadline.at, time.monotonic() + WAIT_WHEN_REMEMBERED))
    try:
        skeleton = await fetch_skeleton(context, feed_did, params, authorization, deadline)
    except XrpcError as exc:
        if exc.status < 500:
            raise
        hit = remembered.get(key, time.monotonic())
        if hit is not None and hit.value is not None:
            STALE_ANSWERS.labels("appview", "app.bsky.feed.getFeed").inc()
            return Skeleton(hit.value.items, hit.value.cursor, hit.age), None
        fallback = context.feed_fallbacks.get(feed_uri)
        row = None
        if fallback is not None:
            row = await context.db.fetchrow(
                "SELECT feed_did FROM feed_generator WHERE uri = ?", fallback
            )
        if fallback is None or row is None:
            raise
        log_event(log, "serving fallback feed", feed=feed_uri, fallback=fallback, error=str(exc))
        SKELETON_CALLS.labels("fallback").inc()
        fallback_params = {**params, "feed": fallback}
        return await fetch_skeleton(context, row[0], fallback_params, None, deadline), fallback
    remembered.put(key, skeleton, time.monotonic())
    return skeleton, None


def _failure(exc: UpstreamUnavailable) -> XrpcError:
    """The error for a generator that gave no answer, from what its attempts raised."""
    failed = [c for c in exc.causes if isinstance(c, GeneratorFailed)]
    if failed:
        SKELETON_CALLS.labels(failed[-1].outcome).inc()
        return XrpcError(502, "UpstreamFailure", str(failed[-1]))
    if exc.causes and all(isinstance(c, TimeoutError) for c in exc.causes):
        SKELETON_CALLS.labels("timeout").inc()
        return XrpcError(504, "UpstreamTimeout", "the feed generator timed out")
    if not exc.causes:
        SKELETON_CALLS.labels("circuit_open").inc()
        return XrpcError(502, "UpstreamFailure", "feed unavailable: the generator keeps failing")
    SKELETON_CALLS.labels("unreachable").inc()
    return XrpcError(502, "UpstreamFailure", f"feed unavailable: {exc.causes[-1]}")


def _answer(feed_did: str, status: int, raw: bytes) -> Skeleton | Refused:
    if len(raw) > MAX_SKELETON_BYTES:
        raise GeneratorFailed("invalid", "the feed generator's answer is too large")
    try:
        body: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if status != 200:
        # The generator's own client errors (an unknown feed, a bad cursor) reach the caller.
        if 400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str):
            return Refused(body["error"], str(body.get("message", body["error"])))
        raise GeneratorFailed("error", f"the feed generator answered {status}")
    if not isinstance(body, dict) or not isinstance(body.get("feed"), list):
        log_event(log, "malformed feed skeleton", logging.WARNING, feed_did=feed_did)
        raise GeneratorFailed("invalid", "the feed generator's answer is malformed")
    items = [item for item in map(_item, body["feed"]) if item is not None]
    cursor = body.get("cursor")
    return Skeleton(items, cursor if isinstance(cursor, str) else None)


def _post_uri(value: Any, collection: str) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        uri = AtUri.parse(value)
    except InvalidSyntax:
        return None
    return value if uri.collection == collection and uri.rkey else None


def _item(entry: Any) -> FeedItem | None:
    if not isinstance(entry, dict):
        return None
    post = _post_uri(entry.get("post"), "app.bsky.feed.post")
    if post is None:
        return None
    context = entry.get("feedContext")
    item = FeedItem(post, feed_context=context if isinstance(context, str) else None)
    reason = entry.get("reason")
    if (
        isinstance(reason, dict)
        and reason.get("$type") == "app.bsky.feed.defs#skeletonReasonRepost"
    ):
        repost = _post_uri(reason.get("repost"), "app.bsky.feed.repost")
        if repost is not None:
            item.repost_uri = repost
            item.reposted_by = repost[5:].split("/", 1)[0]
    return item
