"""The AppView's HTTP application: the app.bsky API and its did:web document."""

from __future__ import annotations

from aiohttp import web

from strata.appview.api import actor, feed, graph, notification
from strata.appview.service import AppView
from strata.core.lexicon import Catalog
from strata.net.server import create_app, json_response
from strata.net.xrpc import XrpcRouter


async def create_appview_app(appview: AppView) -> web.Application:
    """The application serving `appview`; its index is open when this returns, and the relay
    subscription runs while the server does."""
    context = await appview.open()

    async def health() -> None:
        await context.db.fetchrow("SELECT 1")

    app = create_app("appview", health=health)
    router = XrpcRouter(Catalog.bundled())
    for module in (actor, feed, graph, notification):
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
