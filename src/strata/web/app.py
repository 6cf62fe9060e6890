"""The web client's HTTP application: the static client, its configuration, and the
dashboard's probes of the node's services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from strata.net.server import create_app, json_response
from strata.node.probe import probe_all

STATIC: Final = Path(__file__).parent / "static"


@dataclass(frozen=True)
class WebConfig:
    """What the client is told: the PDS to sign in to, the node's feeds and services."""

    pds: str
    services: dict[str, str]
    feeds: tuple[str, ...] = ()


def client_metadata(origin: str) -> dict[str, Any]:
    """The client's OAuth metadata document when it is served from `origin` (a public one: on
    this machine it signs in as a loopback client instead)."""
    return {
        "client_id": f"{origin}/oauth-client-metadata.json",
        "client_name": "Strata",
        "client_uri": origin,
        "redirect_uris": [f"{origin}/"],
        "scope": "atproto transition:generic",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
        "dpop_bound_access_tokens": True,
    }


def create_web_app(config: WebConfig) -> web.Application:
    """The application serving the client; every page is the same document, routed in the
    browser."""
    app = create_app("web")
    # One session for the dashboard's probes, so that polling reuses its connections.
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))

    async def close_http(app: web.Application) -> None:
        await http.close()

    app.on_cleanup.append(close_http)

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def client_config(request: web.Request) -> web.Response:
        return json_response(
            {"pds": config.pds, "feeds": list(config.feeds), "services": config.services}
        )

    async def oauth_client_metadata(request: web.Request) -> web.Response:
        # Behind a proxy that ends TLS, the origin is the one the browser used.
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
        origin = f"{scheme}://{request.host}"
        return json_response(client_metadata(origin))

    async def services(request: web.Request) -> web.Response:
        statuses = await probe_all(http, config.services)
        return json_response({"services": [s.as_json() for s in statuses]})

    app.router.add_get("/", index)
    app.router.add_get("/config.json", client_config)
    app.router.add_get("/api/services", services)
    app.router.add_get("/oauth-client-metadata.json", oauth_client_metadata)
    app.router.add_static("/static/", STATIC)
    return app
