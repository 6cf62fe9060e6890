"""The operator's endpoints, at the reference relay's paths, behind HTTP basic auth as `admin`
with the password in the relay's `secrets.json`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from strata.net.basic_auth import is_admin
from strata.net.errors import XrpcError
from strata.net.server import json_response
from strata.relay.api import crawl
from strata.relay.config import HostAddress, InvalidHost
from strata.relay.service import Relay
from strata.relay.store import Host

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authorized(relay: Relay, request: web.Request) -> None:
    kind, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "basic":
        raise XrpcError(401, "AuthenticationRequired", "admin credentials required")
    if not is_admin(credentials, relay.admin_password):
        raise XrpcError(401, "AuthenticationRequired", "invalid admin credentials")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise XrpcError(400, "InvalidRequest", "body must be a JSON object") from None
    if not isinstance(body, dict):
        raise XrpcError(400, "InvalidRequest", "body must be a JSON object")
    return body


async def _host(relay: Relay, value: Any) -> Host:
    if not isinstance(value, str):
        raise XrpcError(400, "InvalidRequest", "host is required")
    try:
        name = HostAddress.parse(value, dev=True).name
    except InvalidHost as exc:
        raise XrpcError(400, "InvalidRequest", str(exc)) from None
    host = await relay.host(name)
    if host is None:
        raise XrpcError(404, "HostNotFound", f"no host {name}")
    return host


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise XrpcError(400, "InvalidRequest", f"{key} must be a {kind.__name__}")
    return value


def register(app: web.Application, relay: Relay) -> None:
    def route(method: str, path: str, handler: Handler) -> None:
        async def guarded(request: web.Request) -> web.StreamResponse:
            _authorized(relay, request)
            return await handler(request)

        app.router.add_route(method, path, guarded)

    async def list_hosts(request: web.Request) -> web.Response:
        rows = []
        for host in await relay.store.hosts(0, 100_000):
            live = relay.hosts.get(host.id, host)
            stream = relay.streams.get(host.id)
            rows.append(
                {
                    **live.view(),
                    "kind": live.kind,
                    "accountLimit": live.account_limit,
                    "trusted": live.trusted,
                    "lenient": live.lenient,
                    "connected": stream is not None and stream.connected,
                }
            )
        return json_response({"hosts": rows})

    async def request_crawl(request: web.Request) -> web.Response:
        await crawl(relay, str((await _json(request)).get("hostname", "")), operator=True)
        return json_response({})

    async def change_limits(request: web.Request) -> web.Response:
        body = await _json(request)
        host = await _host(relay, body.get("host"))
        limit = _optional(body, "repo_limit", int)
        if limit is not None and limit < 0:
            raise XrpcError(400, "InvalidRequest", "repo_limit must not be negative")
        await relay.change_limits(
            host, limit, _optional(body, "trusted", bool), _optional(body, "lenient", bool)
        )
        return json_response({})

    async def block(request: web.Request) -> web.Response:
        await relay.ban_host(await _host(relay, request.query.get("host")), banned=True)
        return json_response({})

    async def unblock(request: web.Request) -> web.Response:
        await relay.ban_host(await _host(relay, request.query.get("host")), banned=False)
        return json_response({})

    async def takedown(request: web.Request, down: bool) -> web.Response:
        did = (await _json(request)).get("did")
        account = await relay.account(did) if isinstance(did, str) else None
        if account is None:
            raise XrpcError(404, "RepoNotFound", "account not found")
        await relay.set_takedown(account, down)
        return json_response({})

    async def take_down(request: web.Request) -> web.Response:
        return await takedown(request, True)

    async def reverse_takedown(request: web.Request) -> web.Response:
        return await takedown(request, False)

    route("GET", "/admin/pds/list", list_hosts)
    route("POST", "/admin/pds/requestCrawl", request_crawl)
    route("POST", "/admin/pds/changeLimits", change_limits)
    route("POST", "/admin/pds/block", block)
    route("POST", "/admin/pds/unblock", unblock)
    route("POST", "/admin/repo/takeDown", take_down)
    route("POST", "/admin/repo/reverseTakedown", reverse_takedown)
