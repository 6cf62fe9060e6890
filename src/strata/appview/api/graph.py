"""`app.bsky.graph.*`: follows, followers, blocks, relationships, known followers and
accounts to follow."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.appview.context import (
    AppContext,
    newest_first,
    page,
    resolve_actor,
    viewer_verifier,
)
from strata.appview.graph_views import GraphViews
from strata.appview.suggestions import known_followers, similar_accounts
from strata.appview.views import Views
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    optional = viewer_verifier(context)
    required = viewer_verifier(context, required=True)

    async def listing(
        call: Call[Any], did: str, table: str, mine: str, theirs: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Accounts on the other end of `table` rows whose `mine` column is `did`, newest first."""
        rows, cursor = await newest_first(db, table, mine, did, theirs, call.params)
        views = await context.views(Views, call).profiles([r[2] for r in rows], "view")
        return [views[r[2]] for r in rows if r[2] in views], cursor

    async def subject(call: Call[str | None], did: str) -> dict[str, Any]:
        views = await context.views(Views, call).profiles([did], "view")
        return views[did]

    @router.query("app.bsky.graph.getFollows", auth=optional)
    async def get_follows(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        follows, cursor = await listing(call, did, "follow", "creator", "subject")
        body = {"subject": await subject(call, did), "follows": follows}
        return json_response(page(body, cursor))

    @router.query("app.bsky.graph.getFollowers", auth=optional)
    async def get_followers(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        followers, cursor = await listing(call, did, "follow", "subject", "creator")
        body = {"subject": await subject(call, did), "followers": followers}
        return json_response(page(body, cursor))

    @router.query("app.bsky.graph.getBlocks", auth=required)
    async def get_blocks(call: Call[str]) -> web.StreamResponse:
        blocks, cursor = await listing(call, call.auth, "block", "creator", "subject")
        return json_response(page({"blocks": blocks}, cursor))

    @router.query("app.bsky.graph.getKnownFollowers", auth=required)
    async def get_known_followers(call: Call[str]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        known = await known_followers(db, call.auth, [did])
        followers = known[did][: call.params.get("limit", 50)]
        views = context.views(Views, call)
        profiles = await views.profiles([*followers, did], "view")
        rel = await views.relations(followers)
        shown = [profiles[d] for d in followers if d in profiles and not rel.blocks(d)]
        return json_response({"subject": profiles[did], "followers": shown})

    @router.query("app.bsky.graph.getSuggestedFollowsByActor", auth=optional)
    async def get_suggested_follows_by_actor(call: Call[str | None]) -> web.StreamResponse:
        did = await resolve_actor(context, call.params["actor"])
        dids = await similar_accounts(db, did, call.auth)
        views = context.views(GraphViews, call)
        rel = await views.relations(dids)
        wanted = [d for d in dids if not rel.blocks(d) and not rel.mutes(d)]
        profiles = await views.profiles(wanted, "view")
        await views.known_followers(profiles)
        return json_response({"suggestions": [profiles[d] for d in wanted if d in profiles]})

    @router.query("app.bsky.graph.getRelationships", auth=optional)
    async def get_relationships(call: Call[str | None]) -> web.StreamResponse:
        actor = await resolve_actor(context, call.params["actor"])
        others = list(dict.fromkeys(call.params.get("others", [])))
        known = {r[0] for r in await db.fetch("SELECT did FROM actor WHERE did = ANY(?)", others)}
        rel = await context.views(Views, call, actor).relations(known)
        relationships: list[dict[str, Any]] = []
        for other in others:
            if other not in known:
                relationships.append(
                    {"$type": "app.bsky.graph.defs#notFoundActor", "actor": other, "notFound": True}
                )
                continue
            item: dict[str, Any] = {"$type": "app.bsky.graph.defs#relationship", "did": other}
            if other in rel.following:
                item["following"] = rel.following[other]
            if other in rel.followed_by:
                item["followedBy"] = rel.followed_by[other]
            if other in rel.blocking:
                item["blocking"] = rel.blocking[other]
            if other in rel.blocking_by_list:
                item["blockingByList"] = rel.blocking_by_list[other]
            if other in rel.blocked_by_list:
                item["blockedByList"] = rel.blocked_by_list[other]
            if other in rel.blocked_by and (block := await _block_uri(context, other, actor)):
                item["blockedBy"] = block
            relationships.append(item)
        return json_response({"actor": actor, "relationships": relationships})


async def _block_uri(context: AppContext, creator: str, subject: str) -> str | None:
    """The block record of `creator` against `subject`, if there is one (a block through a
    list has none)."""
    row = await context.db.fetchrow(
        "SELECT uri FROM block WHERE creator = ? AND subject = ?", creator, subject
    )
    return str(row[0]) if row else None
