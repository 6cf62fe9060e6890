"""`app.bsky.bookmark.*`: posts a viewer keeps for later. Bookmarks are private, as in the
reference AppView: they are not records, only the viewer's AppView holds them (the viewer's PDS
passes the calls on with the viewer's service token), and posts show only how many there are
(`bookmarkCount`) and whether the viewer is one of them (`viewer.bookmarked`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.appview.context import (
    AppContext,
    page,
    page_cursor,
    read_cursor,
    viewer_verifier,
)
from strata.appview.records import did_of
from strata.appview.views import Views, maybe_post
from strata.core.syntax import AtUri
from strata.net.errors import XrpcError
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.sequencer import iso_now

BOOKMARKABLE = "app.bsky.feed.post"


def _subject(uri: str) -> str:
    """`uri` if it names a post, which is all that can be bookmarked."""
    if AtUri.parse(uri).collection != BOOKMARKABLE:
        raise XrpcError(
            400,
            "UnsupportedCollection",
            f"Only '{BOOKMARKABLE}' records can be bookmarked",
        )
    return uri


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    required = viewer_verifier(context, required=True)

    async def change(uri: str, sql: str, *args: Any) -> web.Response:
        async with db.transaction() as tx:
            await tx.execute(sql, *args)
            await context.announce(tx, [uri])
        # The post's bookmark count is in the hot-path cache with its other counts.
        context.cache.invalidate([uri])
        return web.Response(status=200)

    @router.procedure("app.bsky.bookmark.createBookmark", auth=required)
    async def create_bookmark(call: Call[str]) -> web.StreamResponse:
        uri = _subject(call.body["uri"])
        return await change(
            uri,
            "INSERT INTO bookmark (creator, subject_uri, subject_cid, created_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (creator, subject_uri) DO NOTHING",
            call.auth, uri, str(call.body["cid"]), iso_now(),
        )  # fmt: skip

    @router.procedure("app.bsky.bookmark.deleteBookmark", auth=required)
    async def delete_bookmark(call: Call[str]) -> web.StreamResponse:
        uri = _subject(call.body["uri"])
        return await change(
            uri, "DELETE FROM bookmark WHERE creator = ? AND subject_uri = ?", call.auth, uri
        )

    @router.query("app.bsky.bookmark.getBookmarks", auth=required)
    async def get_bookmarks(call: Call[str]) -> web.StreamResponse:
        limit = call.params.get("limit", 50)
        before, key = read_cursor(call.params)
        rows = await db.fetch(
            "SELECT subject_uri, subject_cid, created_at FROM bookmark WHERE creator = ? "
            "AND (created_at < ? OR (created_at = ? AND subject_uri < ?)) "
            "ORDER BY created_at DESC, subject_uri DESC LIMIT ?",
            call.auth, before, before, key, limit,
        )  # fmt: skip
        views = context.views(Views, call)
        uris = [r[0] for r in rows]
        posts = await views.posts(uris)
        rel = await views.relations(did_of(u) for u in uris)
        bookmarks = [
            {
                "subject": {"uri": uri, "cid": cid},
                "createdAt": created_at,
                "item": maybe_post(uri, posts, rel),
            }
            for uri, cid, created_at in rows
        ]
        cursor = page_cursor(rows[-1][2], rows[-1][0]) if len(rows) == limit else None
        return json_response(page({"bookmarks": bookmarks}, cursor))
