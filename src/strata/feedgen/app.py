"""The feed generator's HTTP application: its XRPC methods, DID document, health and metrics."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.core.lexicon import Catalog
from strata.feedgen import api
from strata.feedgen.service import Feedgen
from strata.net.server import create_app, run_alongside
from strata.net.xrpc import XrpcRouter


def create_feedgen_app(feedgen: Feedgen) -> web.Application:
    """The application serving `feedgen`; it starts and stops the feed generator with the
    server."""

    def upstreams() -> list[dict[str, Any]]:
        relays = feedgen.subscriber.describe() if feedgen.subscriber is not None else []
        return [*feedgen.resolver.dids.plc.describe("directory"), *relays]

    app = create_app("feedgen", health=feedgen.check_health, upstreams=upstreams)
    router = XrpcRouter(Catalog.bundled())
    api.register(router, feedgen)
    router.mount(app)
    api.register_did_document(app, feedgen)

    async def root(request: web.Request) -> web.Response:
        feeds = "\n".join(f"  {uri}" for uri in feedgen.feed_uris()) or "  (no --publisher set)"
        return web.Response(
            text=f"This is an AT Protocol feed generator (Strata): {feedgen.did}\nFeeds:\n{feeds}\n"
        )

    app.router.add_get("/", root)

    run_alongside(app, feedgen.start, feedgen.stop)
    return app
