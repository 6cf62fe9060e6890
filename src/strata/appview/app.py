"""The AppView's HTTP application: the app.bsky API and its did:web document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from strata.appview.api import (
    actor,
    bookmark,
    feed,
    graph,
    labeler,
    lists,
    mutes,
    notification,
    repo,
    unspecced,
)
from strata.appview.context import ACCEPTED_KEY
from strata.appview.labels import content_labelers
from strata.appview.service import AppView
from strata.core.lexicon import Catalog
from strata.net.server import create_app, json_response
from strata.net.xrpc import XrpcRouter

API: Final = (
    actor, bookmark, feed, graph, labeler, lists, mutes, notification, repo, unspecced
)  # fmt: skip
"""The modules of XRPC methods, one per namespace."""
STALE_AFTER: Final = 15.0
"""Seconds without a relay after which answers say how stale the index may be."""


async def create_appview_app(appview: AppView) -> web.Application:
    """The application serving `appview`; its index is open when this returns, and the relay
    subscription runs while the server does."""
    context = await appview.open()

    async def health() -> None:
        await context.db.fetchrow("SELECT 1")

    @web.middleware
    async def index_staleness(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if ACCEPTED_KEY in request:
            labelers, redacting = request[ACCEPTED_KEY]
            response.headers["atproto-content-labelers"] = content_labelers(labelers, redacting)
        stale = appview.index_staleness()
        fresh_answer = "strata-stale-seconds" not in response.headers
        if stale > STALE_AFTER and fresh_answer and request.path.startswith("/xrpc/app.bsky."):
            # Every relay is gone: the index still answers, and says how far behind it may be.
            response.headers["strata-stale-seconds"] = str(int(stale))
            response.headers["strata-stale-reason"] = "relays-unreachable"
        return response

    def upstreams() -> list[dict[str, Any]]:
        relays = appview.subscriber.describe() if appview.subscriber is not None else []
        feedgens = [
            entry for pool in context.feedgens.pools.pools() for entry in pool.describe("feedgen")
        ]
        labelers = [stream.describe() for stream in appview.labeler_streams()]
        return [*context.resolver.dids.plc.describe("directory"), *relays, *feedgens, *labelers]

    app = create_app("appview", health=health, upstreams=upstreams)
    app.middlewares.append(index_staleness)
    router = XrpcRouter(Catalog.bundled())
    for module in API:
        module.register(router, context)
    router.mount(app)

    async def did_json(request: web.Request) -> web.Response:
        return json_response(appview.did_document())

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="This is an AT Protocol AppView (Strata): the app.bsky API.\n")

    app.router.add_get("/.well-known/did.json", did_json)
    app.router.add_get("/", root)

    async def start(_app: web.Application) -> None:
        await appview.start()

    async def stop(_app: web.Application) -> None:
        await appview.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
