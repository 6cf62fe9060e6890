"""`app.bsky.unspecced.*` that the official app calls in normal use: threads (V2), popular
and suggested feeds, trending topics and the app's runtime configuration."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from strata.appview.context import (
    AppContext,
    page,
    page_cursor,
    read_cursor,
    read_offset,
    viewer_verifier,
)
from strata.appview.suggestions import popular_feeds
from strata.appview.threads import ThreadViews
from strata.appview.views import Views
from strata.core.syntax import AtUri
from strata.database import Database
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter

CONFIG: Final = {"checkEmailConfirmed": False, "topicsEnabled": False}
"""What the reference AppView answers to `getConfig` by default: the app need not ask for a
confirmed email first, and there are no topics (Strata keeps no trend data)."""


async def anchor_uri(db: Database, uri: str) -> str:
    """A post URI with its repository named by DID (a handle is looked up in the index)."""
    parsed = AtUri.parse(uri)
    if parsed.authority.startswith("did:"):
        return uri
    row = await db.fetchrow("SELECT did FROM actor WHERE handle = ?", parsed.authority.lower())
    if row is None:
        return uri
    return str(AtUri.make(str(row[0]), parsed.collection, parsed.rkey))


def _like_pattern(text: str) -> str:
    """`text` anywhere, as a LIKE pattern in which `%` and `_` are only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    optional = viewer_verifier(context)

    @router.query("app.bsky.unspecced.getPostThreadV2", auth=optional)
    async def get_post_thread_v2(call: Call[str | None]) -> web.StreamResponse:
        params = call.params
        anchor = await anchor_uri(db, params["anchor"])
        items, others, gate = await context.views(ThreadViews, call).thread_items(
            anchor,
            params.get("above", True),
            params.get("below", 6),
            params.get("branchingFactor", 10),
            params.get("sort", "oldest"),
        )
        body: dict[str, Any] = {"thread": items, "hasOtherReplies": others}
        if gate is not None:
            body["threadgate"] = gate
        return json_response(body)

    @router.query("app.bsky.unspecced.getPostThreadOtherV2", auth=optional)
    async def get_post_thread_other_v2(call: Call[str | None]) -> web.StreamResponse:
        anchor = await anchor_uri(db, call.params["anchor"])
        items = await context.views(ThreadViews, call).other_replies(anchor)
        return json_response({"thread": items})

    @router.query("app.bsky.unspecced.getConfig")
    async def get_config(call: Call[None]) -> web.StreamResponse:
        return json_response(CONFIG)

    @router.query("app.bsky.unspecced.getTrendingTopics", auth=optional)
    async def get_trending_topics(call: Call[str | None]) -> web.StreamResponse:
        return json_response({"topics": [], "suggested": []})

    @router.query("app.bsky.unspecced.getSuggestedFeeds", auth=optional)
    async def get_suggested_feeds(call: Call[str | None]) -> web.StreamResponse:
        uris, _ = await popular_feeds(db, call.params.get("limit", 10), 0)
        return json_response({"feeds": await context.views(Views, call).shown_generators(uris)})

    @router.query("app.bsky.unspecced.getPopularFeedGenerators", auth=optional)
    async def get_popular_feed_generators(call: Call[str | None]) -> web.StreamResponse:
        limit = call.params.get("limit", 50)
        query = (call.params.get("query") or "").strip()
        if query:
            # As the reference: feeds whose name holds the query, newest first.
            before, key = read_cursor(call.params)
            rows = await db.fetch(
                "SELECT uri, sort_at FROM feed_generator WHERE lower(display_name) LIKE ? "
                "ESCAPE '\\' AND (sort_at < ? OR (sort_at = ? AND uri < ?)) "
                "ORDER BY sort_at DESC, uri DESC LIMIT ?",
                _like_pattern(query.lower()), before, before, key, limit,
            )  # fmt: skip
            uris = [str(r[0]) for r in rows]
            full = len(rows) == limit
            cursor = page_cursor(rows[-1][1], rows[-1][0]) if full else None
        else:
            uris, cursor = await popular_feeds(db, limit, read_offset(call.params))
        feeds = await context.views(Views, call).shown_generators(uris)
        return json_response(page({"feeds": feeds}, cursor))
