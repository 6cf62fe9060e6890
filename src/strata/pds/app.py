"""The PDS's HTTP application: XRPC methods, the firehose, and the well-known documents."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strata.net.server import create_app, json_response, run_alongside
from strata.net.xrpc import XrpcRouter
from strata.pds.api import admin, appview, email, identity, repo, server, sync
from strata.pds.api.appview import Proxy
from strata.pds.auth import DPOP_NONCE_KEY
from strata.pds.oauth import routes as oauth_routes
from strata.pds.service import Pds

PDS_KEY = web.AppKey("strata_pds", Pds)

# Large enough for a repository import; JSON bodies and blobs have their own, smaller limits.
MAX_REQUEST_BYTES = 256 << 20


def create_pds_app(pds: Pds) -> web.Application:
    """The application serving `pds`; it starts and stops the PDS with the server."""

    async def health() -> None:
        pds.accounts.conn.execute("SELECT 1").fetchone()

    proxy = Proxy(pds)

    def upstreams() -> list[dict[str, Any]]:
        relays = [{"kind": "relay", "url": url, "inUse": True} for url in pds.config.relays]
        return [*pds.resolver.dids.plc.describe("directory"), *proxy.describe(), *relays]

    app = create_app("pds", health=health, max_body=MAX_REQUEST_BYTES, upstreams=upstreams)
    app.middlewares.append(pds.rate_limits.middleware)
    app[PDS_KEY] = pds
    router = XrpcRouter(pds.catalog)
    for module in (server, email, repo, sync, identity, appview, admin):
        module.register(router, pds)
    router.mount(app, fallback=proxy)
    oauth_routes.install(app, pds)

    async def dpop_nonce(request: web.Request, response: web.StreamResponse) -> None:
        # Every answer to an OAuth call carries the nonce for the client's next proof.
        nonce = request.get(DPOP_NONCE_KEY)
        if nonce is not None:
            response.headers.setdefault("DPoP-Nonce", nonce)

    app.on_response_prepare.append(dpop_nonce)

    async def well_known_did(request: web.Request) -> web.Response:
        host = request.host.split(":", 1)[0].lower()
        account = pds.accounts.by_handle(host)
        if account is None:
            raise web.HTTPNotFound(text="no user by that name")
        return web.Response(text=account.did, content_type="text/plain")

    async def service_did_document(request: web.Request) -> web.Response:
        return json_response(
            {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": pds.config.service_did,
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": pds.config.public_url,
                    }
                ],
            }
        )

    async def root(request: web.Request) -> web.Response:
        return web.Response(
            text="This is an AT Protocol Personal Data Server (Strata).\n"
            "Most API routes are under /xrpc/\n"
        )

    app.router.add_get("/.well-known/atproto-did", well_known_did)
    app.router.add_get("/.well-known/did.json", service_did_document)
    app.router.add_get("/", root)

    run_alongside(app, pds.start, pds.stop)
    return app
