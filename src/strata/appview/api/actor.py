"""`app.bsky.actor.*`: profiles and account search."""

from __future__ import annotations

from aiohttp import web

from strata.appview import search as text_search
from strata.appview.context import (
    AppContext,
    page,
    read_offset,
    resolve_actor,
    viewer_verifier,
)
from strata.appview.graph_views import GraphViews
from strata.appview.suggestions import follows_of_follows
from strata.appview.views import Views
from strata.net.errors import invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    optional = viewer_verifier(context)

    @router.query("app.bsky.actor.getProfile", auth=optional)
    async def get_profile(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        views = await context.views(Views, call).profiles([did], "detailed")
        if did not in views:
            raise invalid_request("Profile not found")
        return json_response(views[did])

    @router.query("app.bsky.actor.getProfiles", auth=optional)
    async def get_profiles(call: Call[str | None]) -> web.StreamResponse:
        actors = list(call.params.get("actors", []))
        rows = await db.fetch(
            "SELECT did FROM actor WHERE did = ANY(?) OR handle = ANY(?)",
            actors, [a.lower() for a in actors],
        )  # fmt: skip
        views = await context.views(Views, call).profiles([r[0] for r in rows], "detailed")
        by_handle = {v["handle"]: v for v in views.values()}
        found = [views.get(a) or by_handle.get(a.lower()) for a in actors]
        unique = {v["did"]: v for v in found if v is not None}
        return json_response({"profiles": list(unique.values())})

    @router.query("app.bsky.actor.getSuggestions", auth=optional)
    async def get_suggestions(call: Call[str | None]) -> web.StreamResponse:
        if call.auth is None:
            return json_response({"actors": []})
        limit = call.params.get("limit", 50)
        offset = read_offset(call.params)
        dids = await follows_of_follows(db, call.auth, limit, offset)
        views = context.views(GraphViews, call)
        rel = await views.relations(dids)
        wanted = [d for d in dids if not rel.blocks(d) and not rel.mutes(d)]
        profiles = await views.profiles(wanted, "view")
        await views.known_followers(profiles)
        cursor = str(offset + len(dids)) if len(dids) == limit else None
        actors = [profiles[d] for d in wanted if d in profiles]
        return json_response(page({"actors": actors}, cursor))

    async def search(call: Call[str | None], level: str) -> tuple[list[dict[str, object]], int]:
        term = call.params.get("q") or call.params.get("term") or ""
        limit = call.params.get("limit", 25)
        offset = read_offset(call.params)
        dids = await text_search.search_actors(db, term, limit, offset)
        views = await context.views(Views, call).profiles(dids, level)
        return [views[d] for d in dids if d in views], offset + len(dids)

    @router.query("app.bsky.actor.searchActors", auth=optional)
    async def search_actors(call: Call[str | None]) -> web.StreamResponse:
        actors, after = await search(call, "view")
        full = len(actors) == call.params.get("limit", 25)
        return json_response(page({"actors": actors}, str(after) if full else None))

    @router.query("app.bsky.actor.searchActorsTypeahead", auth=optional)
    async def search_actors_typeahead(call: Call[str | None]) -> web.StreamResponse:
        actors, _ = await search(call, "basic")
        return json_response({"actors": actors})
