"""Calling a feed generator: find it through its DID, ask for a skeleton, check the answer.

A feed generator is someone else's server. Its answer is treated as untrusted input: a timeout,
an error or a malformed body is a clear upstream error, never a crash, and entries that are
not post URIs are dropped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from prometheus_client import Counter

from strata.appview.context import AppContext
from strata.appview.views import FeedItem
from strata.core.errors import InvalidSyntax
from strata.core.syntax import AtUri
from strata.identity.errors import IdentityError
from strata.net.errors import XrpcError
from strata.net.logs import log_event

log = logging.getLogger("strata.appview.feedgen")

MAX_SKELETON_BYTES: Final = 1 << 20

SKELETON_CALLS = Counter(
    "strata_appview_skeleton_calls_total", "Feed generator calls by outcome", ["outcome"]
)


@dataclass
class Skeleton:
    items: list[FeedItem]
    cursor: str | None


async def generator_endpoint(context: AppContext, feed_did: str) -> str:
    """The `#bsky_fg` service endpoint in the feed generator's DID document."""
    try:
        document = await context.resolver.resolve_did(feed_did)
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
        ) as response:
            return response.status == 200
    except (XrpcError, aiohttp.ClientError, OSError, TimeoutError):
        return False


def _fail(outcome: str, status: int, error: str, message: str) -> XrpcError:
    SKELETON_CALLS.labels(outcome).inc()
    return XrpcError(status, error, message)


async def fetch_skeleton(
    context: AppContext, feed_did: str, params: dict[str, str], authorization: str | None
) -> Skeleton:
    """`getFeedSkeleton` from the feed's generator, passing on the caller's service token."""
    endpoint = await generator_endpoint(context, feed_did)
    headers = {"Authorization": authorization} if authorization else {}
    try:
        async with context.session.get(
            f"{endpoint}/xrpc/app.bsky.feed.getFeedSkeleton",
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=context.skeleton_timeout),
        ) as response:
            raw = await response.content.read(MAX_SKELETON_BYTES + 1)
            status = response.status
    except TimeoutError:
        raise _fail("timeout", 504, "UpstreamTimeout", "the feed generator timed out") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise _fail("unreachable", 502, "UpstreamFailure", f"feed unavailable: {exc}") from None
    if len(raw) > MAX_SKELETON_BYTES:
        raise _fail("invalid", 502, "UpstreamFailure", "the feed generator's answer is too large")
    try:
        body: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if status != 200:
        # The generator's own client errors (an unknown feed, a bad cursor) reach the caller.
        if 400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str):
            SKELETON_CALLS.labels("refused").inc()
            raise XrpcError(400, body["error"], str(body.get("message", body["error"])))
        raise _fail("error", 502, "UpstreamFailure", f"the feed generator answered {status}")
    if not isinstance(body, dict) or not isinstance(body.get("feed"), list):
        log_event(log, "malformed feed skeleton", logging.WARNING, feed_did=feed_did)
        raise _fail("invalid", 502, "UpstreamFailure", "the feed generator's answer is malformed")
    items = [item for item in map(_item, body["feed"]) if item is not None]
    cursor = body.get("cursor")
    SKELETON_CALLS.labels("ok").inc()
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
