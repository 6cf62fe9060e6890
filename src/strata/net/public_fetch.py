"""Fetching URLs a stranger gave us (a client's metadata document, its keys, a host named in a
crawl request, a repository) without being turned against the machine's own network: every
address a host name resolves to must be a public one, and the connection goes to the addresses
that were checked (a second, different answer from DNS cannot slip in); the address of each
connection is checked again as the socket opens, which also covers addresses written in the URL
(in any of their forms). Redirects are not followed; answers are size-capped."""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohappyeyeballs import AddrInfoType
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from strata.net.bounded import read_at_most

MAX_BYTES: Final = 64 * 1024
TIMEOUT: Final = 5.0


class NotPublic(aiohttp.ClientError):
    """The URL's host is, or resolves to, an address that is not public."""


def is_public(address: str) -> bool:
    """Whether `address` is a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def is_address(host: str) -> bool:
    """Whether `host` spells an IP address: as written in a URL (IPv6 in brackets or not), or
    in a form some resolvers accept instead (`2130706433`, `127.1`, `0x7f.1`)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return all(part.isdigit() or part.startswith("0x") for part in host.split("."))
    return True


def is_loopback_host(host: str) -> bool:
    """Whether `host` names this machine: `localhost`, a `.localhost` name, or a loopback
    address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PublicResolver(AbstractResolver):
    """A resolver that answers only with public addresses, and refuses hosts that have
    none."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        refused = [r["host"] for r in found if not is_public(r["host"])]
        if refused or not found:
            raise NotPublic(f"{host} resolves to an address that is not public: {refused}")
        return found

    async def close(self) -> None:
        await self._inner.close()


def public_socket(addr_info: AddrInfoType) -> socket.socket:
    """The socket for a connection about to open to `addr_info`'s address; `OSError` when that
    address is not public. It sees the very address connected to, whether DNS gave it or the
    URL spelled it (an address literal, `http://2130706433` included, never reaches a
    resolver)."""
    family, kind, proto, _, address = addr_info
    if not is_public(str(address[0])):
        raise OSError(errno.EACCES, f"{address[0]} is not a public address")
    return socket.socket(family, kind, proto)


def public_connector(limit: int) -> aiohttp.TCPConnector:
    """A pool of at most `limit` connections that reach public addresses only."""
    return aiohttp.TCPConnector(
        resolver=PublicResolver(), socket_factory=public_socket, limit=limit
    )


REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class RedirectRefused(aiohttp.ClientError):
    """An upstream answered with a redirect, which is not followed."""


async def refuse_redirects(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    """A client middleware that ends a request answered with a redirect (`RedirectRefused`)
    instead of following it: it sees every hop, so it holds for calls that cannot turn
    redirects off themselves, such as a WebSocket handshake."""
    response = await handler(request)
    if response.status in REDIRECTS:
        response.release()
        raise RedirectRefused(f"{request.url.host} answered a redirect, which is not followed")
    return response


def guarded_session(
    limit: int,
    public_only: bool,
    timeout: aiohttp.ClientTimeout,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientSession:
    """A session with its own pool of `limit` connections that never follows a redirect and,
    when `public_only`, reaches public addresses only."""
    connector = public_connector(limit) if public_only else aiohttp.TCPConnector(limit=limit)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers, middlewares=(refuse_redirects,)
    )


def outward_session(dev: bool, timeout: float = 30.0) -> aiohttp.ClientSession:
    """A session of its own for hosts that strangers name (in DID documents, handles,
    tokens): public addresses only but in development, where everything is on loopback, and
    no redirects."""
    return guarded_session(100, not dev, aiohttp.ClientTimeout(total=timeout))


class FetchFailed(Exception):
    """The document could not be fetched or is not what was asked for."""


def check_literal(url: str) -> None:
    """Refuse a URL whose host is an address that is not public (connections to an address
    literal do not go through the resolver)."""
    host = urlsplit(url).hostname or ""
    try:
        public = is_public(host)
    except ValueError:
        public = not is_address(host)
    if not public:
        raise NotPublic(f"{host} is not a public address")


async def fetch_json(session: aiohttp.ClientSession, url: str) -> Any:
    """The JSON document at `url` (200, at most 64 KiB, no redirects)."""
    try:
        async with session.get(
            url, allow_redirects=False, headers={"Accept": "application/json"}
        ) as response:
            if response.status != 200:
                raise FetchFailed(f"{url} answered {response.status}")
            body = await read_at_most(response.content, MAX_BYTES)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise FetchFailed(f"{url} could not be fetched: {exc}") from exc
    if len(body) > MAX_BYTES:
        raise FetchFailed(f"{url} is larger than {MAX_BYTES} bytes")
    try:
        return orjson.loads(body)
    except ValueError as exc:
        raise FetchFailed(f"{url} is not JSON") from exc
