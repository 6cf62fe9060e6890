"""The did:web a service (an AppView, a feed generator) is known by, and the document it serves.

A service's DID names the host of its public URL; resolving that DID must lead back to the URL,
so plain http and explicit ports are for loopback hosts in development mode only.
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from strata.core.diddoc import parse_did_document
from strata.core.errors import CoreError
from strata.identity.did import did_web_url
from strata.identity.errors import InvalidIdentifier, ResolutionFailed
from strata.identity.fetch import BadAnswer, get_json

SERVICE_DOCUMENT_BYTES: Final = 64 * 1024


class InvalidPublicUrl(ValueError):
    """A public URL that no did:web can name."""


def service_did(public_url: str, dev: bool) -> str:
    """The did:web naming the host of `public_url` (the port, if any, percent-encoded).

    Raises `InvalidPublicUrl` unless resolving that DID leads back to `public_url`: a did:web
    document is fetched over https from the default port, except on loopback in dev mode.
    """
    parts = urlsplit(public_url)
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or not host
        or ":" in host
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise InvalidPublicUrl(f"{public_url!r} is not a URL of the form https://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise InvalidPublicUrl(f"{public_url!r} has an invalid port") from None
    authority = host if port is None else f"{host}:{port}"
    did = f"did:web:{host}" if port is None else f"did:web:{host}%3A{port}"
    try:
        fetched_from = did_web_url(did, dev)
    except InvalidIdentifier as exc:
        raise InvalidPublicUrl(str(exc)) from exc
    if fetched_from != f"{parts.scheme}://{authority}/.well-known/did.json":
        raise InvalidPublicUrl(
            f"{did} would be resolved at {fetched_from}, not at {public_url}: use https on the "
            "default port (plain http and ports are for loopback hosts in --dev mode)"
        )
    return did


def service_document(
    did: str, fragment: str, service_type: str, public_url: str, *more: tuple[str, str]
) -> dict[str, object]:
    """The document served at `/.well-known/did.json`: the service `#fragment` at the URL, and
    any `more` (fragment, type) services at the same URL."""
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "service": [
            {"id": f"#{name}", "type": kind, "serviceEndpoint": public_url.rstrip("/")}
            for name, kind in ((fragment, service_type), *more)
        ],
    }


async def fetch_service_did(
    session: aiohttp.ClientSession, url: str, fragment: str, timeout: float = 5.0
) -> str:
    """The DID a service at `url` answers as, from the document it serves at
    `/.well-known/did.json`, which must list the service `#fragment`; raises `ResolutionFailed`.

    For a service the operator named by its URL: the URL is trusted, so the document's DID is
    taken as it is (on loopback its host may be another name for the same machine)."""
    where = f"{url.rstrip('/')}/.well-known/did.json"
    try:
        async with asyncio.timeout(timeout):
            status, body = await get_json(session, where, SERVICE_DOCUMENT_BYTES)
    except (aiohttp.ClientError, OSError, TimeoutError, BadAnswer) as exc:
        raise ResolutionFailed(f"{where}: {exc or type(exc).__name__}") from exc
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ResolutionFailed(f"{where} answered {status} without a DID document")
    try:
        document = parse_did_document(body, body["id"])
    except CoreError as exc:
        raise ResolutionFailed(f"{where}: {exc}") from exc
    if document.service_endpoint(fragment) is None:
        raise ResolutionFailed(f"{where} lists no #{fragment} service")
    return document.did
