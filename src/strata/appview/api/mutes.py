"""`app.bsky.graph` mutes: of accounts, of lists and of threads. They are private: only the
viewer's AppView holds them (the viewer's PDS passes the calls on), and no record says so."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.appview.context import (
    AppContext,
    page,
    page_cursor,
    read_cursor,
    resolve_actor,
    viewer_verifier,
    write,
)
from strata.appview.graph_views import GraphViews
from strata.appview.records import did_of
from strata.net.errors import invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.sequencer import iso_now


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    required = viewer_verifier(context, required=True)

    async def muted_page(call: Call[str], table: str, column: str) -> tuple[list[str], str | None]:
        """The viewer's `table` rows, newest first: their `column`, and the next cursor."""
        limit = call.params.get("limit", 50)
        before, key = read_cursor(call.params)
        rows = await db.fetch(
            f"SELECT {column}, created_at FROM {table} WHERE muter = ? "
            f"AND (created_at < ? OR (created_at = ? AND {column} < ?)) "
            f"ORDER BY created_at DESC, {column} DESC LIMIT ?",
            call.auth, before, before, key, limit,
        )  # fmt: skip
        cursor = page_cursor(rows[-1][1], rows[-1][0]) if len(rows) == limit else None
        return [r[0] for r in rows], cursor

    async def change(sql: str, *args: Any) -> web.Response:
        await write(db, sql, *args)
        return web.Response(status=200)

    @router.procedure("app.bsky.graph.muteActor", auth=required)
    async def mute_actor(call: Call[str]) -> web.StreamResponse:
        subject = await resolve_actor(context, call.body["actor"])
        if subject == call.auth:
            raise invalid_request("Cannot mute oneself")
        reposts, quotes = bool(call.body.get("onlyReposts")), bool(call.body.get("onlyQuoteposts"))
        return await change(
            "INSERT INTO mute (muter, subject, only_reposts, only_quoteposts, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (muter, subject) DO UPDATE SET "
            "only_reposts = excluded.only_reposts, only_quoteposts = excluded.only_quoteposts",
            call.auth, subject, int(reposts), int(quotes), iso_now(),
        )  # fmt: skip

    @router.procedure("app.bsky.graph.unmuteActor", auth=required)
    async def unmute_actor(call: Call[str]) -> web.StreamResponse:
        subject = await resolve_actor(context, call.body["actor"])
        return await change("DELETE FROM mute WHERE muter = ? AND subject = ?", call.auth, subject)

    @router.query("app.bsky.graph.getMutes", auth=required)
    async def get_mutes(call: Call[str]) -> web.StreamResponse:
        dids, cursor = await muted_page(call, "mute", "subject")
        views = await context.views(GraphViews, call).profiles(dids, "view")
        return json_response(page({"mutes": [views[d] for d in dids if d in views]}, cursor))

    @router.procedure("app.bsky.graph.muteActorList", auth=required)
    async def mute_actor_list(call: Call[str]) -> web.StreamResponse:
        uri = call.body["list"]
        row = await db.fetchrow("SELECT purpose FROM list WHERE uri = ?", uri)
        if row is None:
            raise invalid_request(f"List not found: {uri}")
        if row[0] != "app.bsky.graph.defs#modlist":
            raise invalid_request("Only moderation lists can be muted")
        return await change(
            "INSERT INTO list_mute (muter, list_uri, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (muter, list_uri) DO NOTHING",
            call.auth, uri, iso_now(),
        )  # fmt: skip

    @router.procedure("app.bsky.graph.unmuteActorList", auth=required)
    async def unmute_actor_list(call: Call[str]) -> web.StreamResponse:
        return await change(
            "DELETE FROM list_mute WHERE muter = ? AND list_uri = ?", call.auth, call.body["list"]
        )

    @router.query("app.bsky.graph.getListMutes", auth=required)
    async def get_list_mutes(call: Call[str]) -> web.StreamResponse:
        uris, cursor = await muted_page(call, "list_mute", "list_uri")
        views = await context.views(GraphViews, call).lists(uris)
        return json_response(page({"lists": [views[u] for u in uris if u in views]}, cursor))

    @router.procedure("app.bsky.graph.muteThread", auth=required)
    async def mute_thread(call: Call[str]) -> web.StreamResponse:
        root = call.body["root"]
        if not did_of(root):
            raise invalid_request("root must be the at:// URI of a post")
        return await change(
            "INSERT INTO thread_mute (muter, root_uri, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (muter, root_uri) DO NOTHING",
            call.auth, root, iso_now(),
        )  # fmt: skip

    @router.procedure("app.bsky.graph.unmuteThread", auth=required)
    async def unmute_thread(call: Call[str]) -> web.StreamResponse:
        return await change(
            "DELETE FROM thread_mute WHERE muter = ? AND root_uri = ?", call.auth, call.body["root"]
        )
