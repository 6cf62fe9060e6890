"""`app.bsky.graph` lists and starter packs, and `app.bsky.feed.getListFeed`: the posts of a
curation list's members."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.appview.api.feed import ITEM_COLUMNS, items_page
from strata.appview.context import (
    AppContext,
    newest_first,
    page,
    resolve_actor,
    viewer_verifier,
)
from strata.appview.graph_views import GraphViews
from strata.net.errors import XrpcError
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter

PURPOSES = {
    "modlist": "app.bsky.graph.defs#modlist",
    "curatelist": "app.bsky.graph.defs#curatelist",
    "referencelist": "app.bsky.graph.defs#referencelist",
}


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    optional = viewer_verifier(context)
    required = viewer_verifier(context, required=True)

    async def the_list(views: GraphViews, uri: str) -> dict[str, Any]:
        found = await views.lists([uri])
        if uri not in found:
            raise XrpcError(400, "NotFound", f"List not found: {uri}")
        return found[uri]

    @router.query("app.bsky.graph.getList", auth=optional)
    async def get_list(call: Call[str | None]) -> web.StreamResponse:
        views = context.views(GraphViews, call)
        listed = await the_list(views, call.params["list"])
        rows, cursor = await newest_first(
            db, "list_item", "list_uri", listed["uri"], "subject", call.params
        )
        items = await views.members([(r[0], r[2]) for r in rows])
        return json_response(page({"list": listed, "items": items}, cursor))

    @router.query("app.bsky.graph.getLists", auth=optional)
    async def get_lists(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        rows, cursor = await newest_first(db, "list", "creator", did, "purpose", call.params)
        purposes = {PURPOSES.get(p, p) for p in call.params.get("purposes", [])}
        wanted = [r[0] for r in rows if not purposes or r[2] in purposes]
        views = await context.views(GraphViews, call).lists(wanted)
        return json_response(page({"lists": [views[u] for u in wanted if u in views]}, cursor))

    @router.query("app.bsky.graph.getListBlocks", auth=required)
    async def get_list_blocks(call: Call[str]) -> web.StreamResponse:
        rows, cursor = await newest_first(
            db, "list_block", "creator", call.auth, "subject", call.params
        )
        wanted = [r[2] for r in rows]
        views = await context.views(GraphViews, call).lists(wanted)
        return json_response(page({"lists": [views[u] for u in wanted if u in views]}, cursor))

    @router.query("app.bsky.feed.getListFeed", auth=optional)
    async def get_list_feed(call: Call[str | None]) -> web.StreamResponse:
        views = context.views(GraphViews, call)
        await the_list(views, call.params["list"])
        items, cursor = await items_page(
            db,
            f"SELECT {ITEM_COLUMNS} FROM feed_item f WHERE f.originator IN "
            "(SELECT subject FROM list_item WHERE list_uri = ?)",
            [call.params["list"]],
            call.params,
        )
        feed = await views.feed(items, hide_muted=True)
        return json_response(page({"feed": feed}, cursor))

    @router.query("app.bsky.graph.getStarterPack", auth=optional)
    async def get_starter_pack(call: Call[str | None]) -> web.StreamResponse:
        uri = call.params["starterPack"]
        views = await context.views(GraphViews, call).starter_packs([uri], detailed=True)
        if uri not in views:
            raise XrpcError(400, "NotFound", f"Starter pack not found: {uri}")
        return json_response({"starterPack": views[uri]})

    @router.query("app.bsky.graph.getStarterPacks", auth=optional)
    async def get_starter_packs(call: Call[str | None]) -> web.StreamResponse:
        uris = list(call.params.get("uris", []))
        views = await context.views(GraphViews, call).starter_packs(uris)
        return json_response({"starterPacks": [views[u] for u in uris if u in views]})

    @router.query("app.bsky.graph.getActorStarterPacks", auth=optional)
    async def get_actor_starter_packs(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        rows, cursor = await newest_first(db, "starter_pack", "creator", did, "cid", call.params)
        wanted = [r[0] for r in rows]
        views = await context.views(GraphViews, call).starter_packs(wanted)
        body = {"starterPacks": [views[u] for u in wanted if u in views]}
        return json_response(page(body, cursor))
