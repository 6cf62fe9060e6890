"""DID resolution: did:plc through an ordered list of directories, did:web from its host."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote

import aiohttp

from strata.core.diddoc import DidDocument, DidDocumentError, parse_did_document
from strata.core.errors import InvalidSyntax
from strata.core.plc import PlcError, validate_plc_did
from strata.core.syntax import validate_did
from strata.identity.errors import IdentityNotFound, InvalidIdentifier, ResolutionFailed
from strata.identity.fetch import BadAnswer, get_json
from strata.net.public_fetch import is_address, is_loopback_host
from strata.net.upstream import UpstreamPool, UpstreamUnavailable

MAX_DOCUMENT_BYTES: Final = 64 * 1024


def did_web_url(did: str, dev: bool) -> str:
    """The URL of a did:web document. Only host-level did:web is part of atproto.

    Plain http and an explicit port are allowed for loopback hosts in development mode only.
    """
    ident = did[len("did:web:") :]
    if ":" in ident:
        raise InvalidIdentifier(f"path-based did:web is not supported in atproto: {did}")
    authority = unquote(ident)
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = authority.partition(":")
    if not host or "/" in authority or "@" in authority:
        raise InvalidIdentifier(f"invalid did:web host: {did}")
    if is_address(host) and not (dev and is_loopback_host(host)):
        raise InvalidIdentifier(f"did:web names a host, not an IP address: {did}")
    if is_loopback_host(host) or port:
        if not dev:
            raise InvalidIdentifier(
                f"did:web on a loopback host or explicit port is allowed only in --dev mode: {did}"
            )
        if is_loopback_host(host):
            return f"http://{authority}/.well-known/did.json"
    return f"https://{authority}/.well-known/did.json"


class DidResolver:
    """Fetches DID documents; no caching (see `IdentityResolver`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        plc_urls: Sequence[str],
        dev: bool = False,
        timeout: float = 3.0,
        hedge_after: float = 0.25,
        web_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.session = session
        # did:web hosts are named by strangers: the caller may give a session that reaches
        # public addresses only, while the PLC directories are the operator's.
        self.web_session = web_session or session
        self.dev = dev
        self.timeout = timeout
        self.plc = UpstreamPool("plc", plc_urls, timeout=timeout, hedge_after=hedge_after)

    async def resolve(self, did: str) -> DidDocument:
        """The current DID document of `did`.

        Raises `InvalidIdentifier`, `IdentityNotFound` (the DID does not exist or is
        deactivated) or `ResolutionFailed` (no source gave a usable answer).
        """
        try:
            validate_did(did)
        except InvalidSyntax as exc:
            raise InvalidIdentifier(str(exc)) from exc
        if did.startswith("did:plc:"):
            try:
                validate_plc_did(did)
            except PlcError as exc:
                raise InvalidIdentifier(str(exc)) from exc
            return await self._resolve_plc(did)
        if did.startswith("did:web:"):
            return await self._resolve_web(did)
        raise InvalidIdentifier(f"unsupported DID method: {did.split(':')[1]}")

    async def _resolve_plc(self, did: str) -> DidDocument:
        async def from_directory(base: str) -> DidDocument | None:
            status, body = await get_json(self.session, f"{base}/{did}", MAX_DOCUMENT_BYTES)
            if status in (404, 410):
                return None
            if status != 200:
                raise BadAnswer(f"status {status}")
            try:
                return parse_did_document(body, did)
            except DidDocumentError as exc:
                raise BadAnswer(str(exc)) from exc

        try:
            doc = await self.plc.call(from_directory)
        except UpstreamUnavailable as exc:
            raise ResolutionFailed(str(exc)) from exc
        if doc is None:
            raise IdentityNotFound(f"DID not registered: {did}")
        return doc

    async def _resolve_web(self, did: str) -> DidDocument:
        url = did_web_url(did, self.dev)
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await get_json(self.web_session, url, MAX_DOCUMENT_BYTES)
        except (aiohttp.ClientError, OSError, TimeoutError, BadAnswer) as exc:
            raise ResolutionFailed(f"{url}: {type(exc).__name__}: {exc}") from exc
        if status in (404, 410):
            raise IdentityNotFound(f"no DID document at {url}")
        if status != 200:
            raise ResolutionFailed(f"{url}: status {status}")
        try:
            return parse_did_document(body, did)
        except DidDocumentError as exc:
            raise ResolutionFailed(f"{url}: {exc}") from exc
