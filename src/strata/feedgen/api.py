"""The feed generator's XRPC methods and its DID document."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import Counter

from strata.feedgen.algorithm import BadCursor, FeedItem, ViewerRequired
from strata.feedgen.config import did_document
from strata.feedgen.service import Feedgen
from strata.net.errors import XrpcError, invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter

SKELETON_REQUESTS = Counter(
    "strata_feedgen_skeleton_requests_total",
    "getFeedSkeleton requests by feed and outcome",
    ["feed", "outcome"],
)


def _item(item: str | FeedItem) -> dict[str, Any]:
    return {"post": item} if isinstance(item, str) else item.view()


def register(router: XrpcRouter, feedgen: Feedgen) -> None:
    # Looked up per call: the verifier exists only once the feed generator has started.
    async def viewer(request: web.Request, nsid: str) -> str | None:
        return await feedgen.auth.viewer(request, nsid)

    @router.query("app.bsky.feed.describeFeedGenerator")
    async def describe_feed_generator(call: Call[None]) -> web.Response:
        return json_response(
            {"did": feedgen.did, "feeds": [{"uri": uri} for uri in feedgen.feed_uris()]}
        )

    @router.query("app.bsky.feed.getFeedSkeleton", auth=viewer)
    async def get_feed_skeleton(call: Call[str | None]) -> web.Response:
        algorithm = feedgen.algorithm_for(call.params["feed"])
        if algorithm is None:
            SKELETON_REQUESTS.labels("unknown", "unknown_feed").inc()
            raise XrpcError(400, "UnknownFeed", "Unknown feed")
        feed = algorithm.rkey
        try:
            items, cursor = await algorithm.skeleton(
                feedgen.db, call.auth, call.params.get("limit", 50), call.params.get("cursor")
            )
        except BadCursor as exc:
            SKELETON_REQUESTS.labels(feed, "bad_cursor").inc()
            raise invalid_request(str(exc)) from exc
        except ViewerRequired as exc:
            SKELETON_REQUESTS.labels(feed, "viewer_required").inc()
            raise XrpcError(401, "AuthRequired", str(exc)) from exc
        except Exception:
            SKELETON_REQUESTS.labels(feed, "error").inc()
            raise
        SKELETON_REQUESTS.labels(feed, "ok").inc()
        out: dict[str, Any] = {"feed": [_item(item) for item in items]}
        if cursor is not None:
            out["cursor"] = cursor
        return json_response(out)


def register_did_document(app: web.Application, feedgen: Feedgen) -> None:
    """Serve `/.well-known/did.json`, which resolves this feed generator's did:web."""
    document = did_document(feedgen.did, feedgen.config.public_url)

    async def did_json(request: web.Request) -> web.Response:
        return json_response(document)

    app.router.add_get("/.well-known/did.json", did_json)
