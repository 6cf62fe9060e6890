"""`app.bsky.feed.*`: timelines, author feeds, threads, posts, likes, reposts, feed generators
and search."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from aiohttp import web

from strata.appview import search as text_search
from strata.appview.context import (
    AppContext,
    newest_first,
    page,
    page_cursor,
    read_cursor,
    read_offset,
    resolve_actor,
    viewer_verifier,
)
from strata.appview.feedgen_client import feed_skeleton, generator_online
from strata.appview.records import did_of
from strata.appview.suggestions import popular_feeds
from strata.appview.views import FeedItem, FeedViews, Views
from strata.core.syntax import format_datetime, parse_datetime
from strata.database import Database
from strata.net.errors import XrpcError, invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.sequencer import iso_now
from strata.resilience import TIMEOUT_HEADER, Deadline, parse_timeout_ms

AUTHOR_FILTERS = {
    "posts_with_replies": "",
    "posts_no_replies": " AND f.is_reply = 0",
    "posts_with_media": " AND f.type = 'post' AND p.media IS NOT NULL",
    "posts_with_video": " AND f.type = 'post' AND p.media = 'video'",
    "posts_and_author_threads": " AND (f.is_reply = 0 OR p.reply_root LIKE ?)",
}

ITEM_COLUMNS = "f.uri, f.type, f.post_uri, f.originator, f.sort_at"
TIMELINE_QUERY = (
    f"SELECT {ITEM_COLUMNS} FROM feed_item f WHERE f.originator IN "
    "(SELECT subject FROM follow WHERE creator = ? UNION ALL SELECT ?) "
    "AND f.sort_at > ? AND (f.sort_at < ? OR (f.sort_at = ? AND f.uri < ?)) "
    "ORDER BY f.sort_at DESC, f.uri DESC LIMIT ?"
)
"""A page of the viewer's and their follows' items in a window: viewer, viewer, after, before,
before, key, limit."""
TIMELINE_WINDOWS = (1, 7, 30, None)
"""Days back from the page's start that a timeline page is searched in, in turn."""


def days_before(moment: str, days: int) -> str:
    """The index time `days` before `moment` (both in the index's ISO form)."""
    earlier = parse_datetime(moment) - dt.timedelta(days=days)
    return format_datetime(earlier)


def _items(rows: list[Any]) -> list[FeedItem]:
    return [
        FeedItem(r[2], r[0], r[3], r[4]) if r[1] == "repost" else FeedItem(r[2], sort_at=r[4])
        for r in rows
    ]


async def items_page(
    db: Database, select: str, args: list[Any], params: dict[str, Any]
) -> tuple[list[FeedItem], str | None]:
    """A page of feed items, newest first after the params' cursor: `select` is a `SELECT
    {ITEM_COLUMNS} FROM feed_item f WHERE ...` with its `args`."""
    limit = params.get("limit", 50)
    before, key = read_cursor(params)
    rows = await db.fetch(
        f"{select} AND (f.sort_at < ? OR (f.sort_at = ? AND f.uri < ?)) "
        "ORDER BY f.sort_at DESC, f.uri DESC LIMIT ?",
        *args, before, before, key, limit,
    )  # fmt: skip
    return _items(rows), _next(rows, limit)


def _next(rows: list[Any], limit: int, sort_index: int = 4, key_index: int = 0) -> str | None:
    if len(rows) < limit or not rows:
        return None
    last = rows[-1]
    return page_cursor(last[sort_index], last[key_index])


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    optional = viewer_verifier(context)
    required = viewer_verifier(context, required=True)

    @router.query("app.bsky.feed.getTimeline", auth=required)
    async def get_timeline(call: Call[str]) -> web.StreamResponse:
        limit = call.params.get("limit", 50)
        before, key = read_cursor(call.params)
        # Sorting every item of everyone followed costs tens of thousands of rows a page; a page
        # is searched for in the last day first, then in wider windows, as the reference did
        # (getFeedDateThreshold) but without its empty pages for quiet timelines.
        start = min(before, iso_now())
        rows: list[Any] = []
        for days in TIMELINE_WINDOWS:
            after = days_before(start, days) if days is not None else ""
            rows = await db.fetch(
                TIMELINE_QUERY, call.auth, call.auth, after, before, before, key, limit
            )
            if len(rows) == limit:
                break
        feed = await context.views(FeedViews, call).feed(_items(rows), hide_muted=True)
        return json_response(page({"feed": feed}, _next(rows, limit)))

    @router.query("app.bsky.feed.getAuthorFeed", auth=optional)
    async def get_author_feed(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        views = context.views(FeedViews, call)
        rel = await views.relations([did])
        if did in rel.blocking or did in rel.blocking_by_list:
            raise XrpcError(400, "BlockedActor", "Requester has blocked actor")
        if did in rel.blocked_by:
            raise XrpcError(400, "BlockedByActor", "Requester is blocked by actor")
        limit = call.params.get("limit", 50)
        before, key = read_cursor(call.params)
        # As the reference: a filter it does not know shows everything.
        where = AUTHOR_FILTERS.get(call.params.get("filter", ""), "")
        extra = [f"at://{did}/%"] if "LIKE" in where else []
        rows = await db.fetch(
            f"SELECT {ITEM_COLUMNS} FROM feed_item f JOIN post p ON p.uri = f.post_uri "
            f"WHERE f.originator = ? AND (f.sort_at < ? OR (f.sort_at = ? AND f.uri < ?)){where} "
            "ORDER BY f.sort_at DESC, f.uri DESC LIMIT ?",
            did, before, before, key, *extra, limit,
        )  # fmt: skip
        items = _items(rows)
        if call.params.get("includePins") and not call.params.get("cursor"):
            pinned = await db.fetchrow("SELECT pinned_post FROM profile WHERE did = ?", did)
            if pinned and pinned[0]:
                items.insert(0, FeedItem(pinned[0]))
        feed = await views.feed(items)
        return json_response(page({"feed": feed}, _next(rows, limit)))

    @router.query("app.bsky.feed.getPostThread", auth=optional)
    async def get_post_thread(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["uri"]
        thread = await context.views(FeedViews, call).thread(
            uri, call.params.get("depth", 6), call.params.get("parentHeight", 80)
        )
        if thread is None:
            raise XrpcError(400, "NotFound", f"Post not found: {uri}")
        return json_response({"thread": thread})

    @router.query("app.bsky.feed.getPosts", auth=optional)
    async def get_posts(call: Call[str | None]) -> web.StreamResponse:
        uris = list(call.params.get("uris", []))
        views = context.views(Views, call)
        posts = await views.posts(uris)
        rel = await views.relations([p["author"]["did"] for p in posts.values()])
        found = [posts[u] for u in uris if u in posts and not rel.blocks(posts[u]["author"]["did"])]
        return json_response({"posts": found})

    @router.query("app.bsky.feed.getLikes", auth=optional)
    async def get_likes(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["uri"]
        limit = call.params.get("limit", 50)
        before, key = read_cursor(call.params)
        rows = await db.fetch(
            "SELECT l.uri, l.creator, l.sort_at, r.indexed_at, r.json FROM likes l "
            "JOIN record r ON r.uri = l.uri WHERE l.subject = ? "
            "AND (l.sort_at < ? OR (l.sort_at = ? AND l.uri < ?)) "
            "ORDER BY l.sort_at DESC, l.uri DESC LIMIT ?",
            uri, before, before, key, limit,
        )  # fmt: skip
        views = context.views(Views, call)
        actors = await views.profiles([r[1] for r in rows], "view")
        likes = [
            {"indexedAt": r[3], "createdAt": _created(r[4], r[2]), "actor": actors[r[1]]}
            for r in rows
            if r[1] in actors
        ]
        body: dict[str, Any] = {"uri": uri, "likes": likes}
        if call.params.get("cid"):
            body["cid"] = call.params["cid"]
        return json_response(page(body, _next(rows, limit, 2)))

    @router.query("app.bsky.feed.getRepostedBy", auth=optional)
    async def get_reposted_by(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["uri"]
        rows, cursor = await newest_first(db, "repost", "subject", uri, "creator", call.params)
        actors = await context.views(Views, call).profiles([r[2] for r in rows], "view")
        body: dict[str, Any] = {
            "uri": uri,
            "repostedBy": [actors[r[2]] for r in rows if r[2] in actors],
        }
        if call.params.get("cid"):
            body["cid"] = call.params["cid"]
        return json_response(page(body, cursor))

    @router.query("app.bsky.feed.getActorLikes", auth=required)
    async def get_actor_likes(call: Call[str]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        if did != call.auth:
            raise invalid_request("Profile not found")
        rows, cursor = await newest_first(db, "likes", "creator", did, "subject", call.params)
        feed = await context.views(FeedViews, call).feed([FeedItem(r[2]) for r in rows])
        return json_response(page({"feed": feed}, cursor))

    @router.query("app.bsky.feed.getQuotes", auth=optional)
    async def get_quotes(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["uri"]
        rows, cursor = await newest_first(db, "post", "quote_uri", uri, "creator", call.params)
        views = context.views(Views, call)
        posts = await views.posts([r[0] for r in rows])
        # Left out: quotes whose author and the viewer, or the quoted post's author, block
        # one another.
        author = did_of(uri)
        rel = await views.relations(r[2] for r in rows)
        blocks = await views.blocks_among([author, *(r[2] for r in rows)])
        found = [
            posts[r[0]]
            for r in rows
            if r[0] in posts and not rel.blocks(r[2]) and frozenset((author, r[2])) not in blocks
        ]
        body: dict[str, Any] = {"uri": uri, "posts": found}
        if call.params.get("cid"):
            body["cid"] = call.params["cid"]
        return json_response(page(body, cursor))

    @router.query("app.bsky.feed.searchPosts", auth=optional)
    async def search_posts(call: Call[str | None]) -> web.StreamResponse:
        params = call.params
        query = text_search.parse_post_query(params["q"])
        author = params.get("author") or query.author
        if author == "me":
            if call.auth is None:
                raise invalid_request("from:me needs a signed-in viewer")
            author = call.auth
        try:
            filters = text_search.PostFilters(
                author=await resolve_actor(context, author) if author else None,
                lang=params.get("lang"),
                since=text_search.search_time(params["since"], "since")
                if params.get("since")
                else None,
                until=text_search.search_time(params["until"], "until")
                if params.get("until")
                else None,
            )
            uris, cursor = await text_search.search_posts(
                db, query, filters, params.get("sort", "latest"), params.get("limit", 25),
                params.get("cursor"),
            )  # fmt: skip
        except text_search.BadQuery as exc:
            raise invalid_request(str(exc)) from None
        views = context.views(Views, call)
        posts = await views.posts(uris)
        rel = await views.relations(did_of(u) for u in posts)
        found = [posts[u] for u in uris if u in posts and not rel.blocks(did_of(u))]
        return json_response(page({"posts": found}, cursor))

    @router.query("app.bsky.feed.getFeedGenerator", auth=optional)
    async def get_feed_generator(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["feed"]
        views = await context.views(Views, call).generators([uri])
        if uri not in views:
            raise XrpcError(400, "UnknownFeed", "could not find feed")
        online = await generator_online(context, views[uri]["did"])
        return json_response({"view": views[uri], "isOnline": online, "isValid": online})

    @router.query("app.bsky.feed.getFeedGenerators", auth=optional)
    async def get_feed_generators(call: Call[str | None]) -> web.StreamResponse:
        uris = list(call.params.get("feeds", []))
        views = await context.views(Views, call).generators(uris)
        return json_response({"feeds": [views[u] for u in uris if u in views]})

    @router.query("app.bsky.feed.getSuggestedFeeds", auth=optional)
    async def get_suggested_feeds(call: Call[str | None]) -> web.StreamResponse:
        limit = call.params.get("limit", 50)
        uris, cursor = await popular_feeds(db, limit, read_offset(call.params))
        feeds = await context.views(Views, call).shown_generators(uris)
        return json_response(page({"feeds": feeds}, cursor))

    @router.query("app.bsky.feed.getActorFeeds", auth=optional)
    async def get_actor_feeds(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        rows, cursor = await newest_first(db, "feed_generator", "creator", did, "cid", call.params)
        views = await context.views(Views, call).generators([r[0] for r in rows])
        feeds = [views[r[0]] for r in rows if r[0] in views]
        return json_response(page({"feeds": feeds}, cursor))

    @router.query("app.bsky.feed.getFeed", auth=optional)
    async def get_feed(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["feed"]
        row = await db.fetchrow("SELECT feed_did FROM feed_generator WHERE uri = ?", uri)
        if row is None:
            raise XrpcError(400, "UnknownFeed", "could not find feed")
        budget = parse_timeout_ms(call.request.headers.get(TIMEOUT_HEADER))
        deadline = Deadline.after(time.monotonic(), budget or context.skeleton_timeout)
        limit: int = call.params.get("limit", 50)
        params = {k: v for k, v in call.request.query.items() if k in ("feed", "cursor")}
        skeleton, fallback = await feed_skeleton(
            context,
            uri,
            row[0],
            {**params, "limit": str(limit)},
            call.request.headers.get("Authorization"),
            call.auth,
            deadline,
        )
        # A generator may answer with more than was asked: only a page is hydrated.
        feed = await context.views(FeedViews, call).feed(skeleton.items[:limit])
        headers = {}
        if skeleton.stale_seconds:
            headers["strata-stale-seconds"] = str(int(skeleton.stale_seconds))
            headers["strata-stale-reason"] = "feedgen-unreachable"
        if fallback is not None:
            headers["strata-degraded"] = f"fallback-feed {fallback}"
        return json_response(page({"feed": feed}, skeleton.cursor), headers=headers)


def _created(raw: str, fallback: str) -> str:
    value = json.loads(raw).get("createdAt")
    return value if isinstance(value, str) else fallback
