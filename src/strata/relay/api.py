"""The relay's public XRPC methods: its firehose, what it knows of repositories and hosts, and
`requestCrawl`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
from aiohttp import web

from strata.net.errors import XrpcError
from strata.net.firehose import serve_event_stream
from strata.net.logs import log_event
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.relay.config import HostAddress, InvalidHost
from strata.relay.service import Relay
from strata.relay.store import Account

log = logging.getLogger("strata.relay.api")

RELAY_VIA: Final = "1.1 strata atproto-relay"
"""Marks a forwarded requestCrawl so that sibling relays do not forward it again."""


async def _known(relay: Relay, did: str) -> Account:
    account = await relay.store.account_committed(did)
    if account is None:
        raise XrpcError(404, "RepoNotFound", "account not found")
    return account


def _cursor(call: Call[None]) -> int:
    """A listing's cursor: the row number after which the next page starts."""
    try:
        return int(call.params.get("cursor", "0"))
    except ValueError:
        raise XrpcError(400, "InvalidRequest", "malformed cursor") from None


def register(router: XrpcRouter, relay: Relay) -> None:
    @router.query("com.atproto.sync.subscribeRepos")
    async def subscribe_repos(call: Call[None]) -> web.StreamResponse:
        return await serve_event_stream(
            "relay", relay.events, call.request, call.params.get("cursor")
        )

    @router.query("com.atproto.sync.listRepos")
    async def list_repos(call: Call[None]) -> web.Response:
        limit, after = call.params.get("limit", 500), _cursor(call)
        accounts = await relay.store.list_accounts(after, limit)
        repos = []
        for account in accounts:
            repo: dict[str, Any] = {
                "did": account.did,
                "head": account.commit_cid,
                "rev": account.rev,
                "active": account.active,
            }
            if account.status_field is not None:
                repo["status"] = account.status_field
            repos.append(repo)
        out: dict[str, Any] = {"repos": repos}
        if len(accounts) == limit:
            out["cursor"] = str(accounts[-1].uid)
        return json_response(out)

    @router.query("com.atproto.sync.getRepoStatus")
    async def get_repo_status(call: Call[None]) -> web.Response:
        account = await _known(relay, call.params["did"])
        out: dict[str, Any] = {"did": account.did, "active": account.active}
        if account.status_field is not None:
            out["status"] = account.status_field
        if account.rev is not None:
            out["rev"] = account.rev
        return json_response(out)

    @router.query("com.atproto.sync.getLatestCommit")
    async def get_latest_commit(call: Call[None]) -> web.Response:
        account = await _known(relay, call.params["did"])
        status = account.status_field
        if status in ("takendown", "suspended"):
            raise XrpcError(403, "RepoTakendown", "account not active (takendown)")
        if status == "deactivated":
            raise XrpcError(403, "RepoDeactivated", "account not active (deactivated)")
        if status == "deleted":
            raise XrpcError(403, "RepoDeleted", "account not active (deleted)")
        if status is not None:
            raise XrpcError(403, "RepoInactive", f"account not active: {status}")
        if account.commit_cid is None:
            raise XrpcError(404, "RepoNotSynchronized", "do not know current repo state")
        return json_response({"cid": account.commit_cid, "rev": account.rev})

    @router.query("com.atproto.sync.getRepo")
    async def get_repo(call: Call[None]) -> web.StreamResponse:
        did = call.params["did"]
        await _known(relay, did)
        document = (await relay.resolver.resolve_did(did)).value
        endpoint = document.pds_endpoint
        if endpoint is None:
            raise XrpcError(404, "RepoNotFound", "the account's DID document names no PDS")
        target = f"{endpoint.rstrip('/')}/xrpc/com.atproto.sync.getRepo?{call.request.query_string}"
        raise web.HTTPFound(target)

    @router.query("com.atproto.sync.listHosts")
    async def list_hosts(call: Call[None]) -> web.Response:
        limit, after = call.params.get("limit", 200), _cursor(call)
        hosts = [relay.hosts.get(h.id, h) for h in await relay.store.hosts(after, limit)]
        out: dict[str, Any] = {"hosts": [h.view() for h in hosts]}
        if len(hosts) == limit:
            out["cursor"] = str(hosts[-1].id)
        return json_response(out)

    @router.query("com.atproto.sync.getHostStatus")
    async def get_host_status(call: Call[None]) -> web.Response:
        try:
            name = HostAddress.parse(call.params["hostname"], dev=True).name
        except InvalidHost:
            raise XrpcError(400, "InvalidRequest", "hostname is not a host name") from None
        host = await relay.host(name)
        if host is None:
            raise XrpcError(404, "HostNotFound", "host not found")
        return json_response(host.view())

    @router.procedure("com.atproto.sync.requestCrawl")
    async def request_crawl(call: Call[Any]) -> web.Response:
        hostname = call.body["hostname"]
        await crawl(relay, hostname, operator=False)
        if not any("atproto-relay" in v for v in call.request.headers.getall("Via", [])):
            await asyncio.gather(*(_forward(relay, s, hostname) for s in relay.config.siblings))
        return web.Response(status=200)


async def crawl(relay: Relay, hostname: str, operator: bool) -> None:
    """Follow the host named in a `requestCrawl` after checking that it is a live PDS."""
    try:
        address = HostAddress.parse(hostname, relay.config.dev)
    except InvalidHost as exc:
        raise XrpcError(400, "BadRequest", f"hostname field empty or invalid: {exc}") from None
    existing = await relay.host(address.name)
    if existing is not None and existing.status == "banned":
        raise XrpcError(401, "DomainBan", "host is banned on this relay")
    limited = await relay.new_hosts_today() >= relay.config.new_hosts_per_day
    if existing is None and not operator and limited:
        raise XrpcError(429, "RateLimitExceeded", "too many new hosts today; try tomorrow")
    try:
        async with relay.fetch_http.get(
            f"{address.url}/xrpc/com.atproto.server.describeServer",
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            answered = response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log_event(
            log, "crawl check failed", host=address.name, error=str(exc) or type(exc).__name__
        )
        answered = False
    if not answered:
        # One answer for every failure: what the host answered, or whether anything listens
        # there, is not told to the caller (a relay must not be a port scanner).
        raise XrpcError(400, "HostNotFound", "host server unreachable or not a PDS")
    await relay.add_host(address, "pds")


async def _forward(relay: Relay, sibling: str, hostname: str) -> None:
    url = f"{sibling.rstrip('/')}/xrpc/com.atproto.sync.requestCrawl"
    try:
        async with relay.peer_http.post(
            url,
            json={"hostname": hostname},
            headers={"Via": RELAY_VIA},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as response:
            log_event(log, "forwarded requestCrawl", sibling=sibling, status=response.status)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log_event(
            log, "forwarding requestCrawl failed", logging.WARNING, sibling=sibling, error=str(exc)
        )
