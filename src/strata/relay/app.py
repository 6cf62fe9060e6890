"""The relay's HTTP application: its XRPC methods, firehose and operator endpoints."""

from __future__ import annotations

from aiohttp import web

from strata.core.lexicon import Catalog
from strata.net.server import create_app, run_alongside
from strata.net.xrpc import XrpcRouter
from strata.relay import admin, api
from strata.relay.service import Relay


def create_relay_app(relay: Relay) -> web.Application:
    """The application serving `relay`; it starts and stops the relay with the server."""

    async def health() -> None:
        await relay.store.db.fetchrow("SELECT 1")

    app = create_app("relay", health=health)
    router = XrpcRouter(Catalog.bundled())
    api.register(router, relay)
    admin.register(app, relay)
    router.mount(app)

    async def root(request: web.Request) -> web.Response:
        return web.Response(
            text="This is an AT Protocol relay (Strata): a firehose of many PDSes.\n"
            "Subscribe at /xrpc/com.atproto.sync.subscribeRepos\n"
        )

    app.router.add_get("/", root)

    run_alongside(app, relay.start, relay.stop)
    return app
