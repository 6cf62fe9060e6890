"""Handle resolution: the `_atproto` DNS TXT record and the `/.well-known/atproto-did` file.

Both methods are tried at once and a DID from either is the answer (DNS preferred when both
answer). A handle that neither method binds is "not found" only if both actually answered; if
one failed, the result is a failure, so that a cached binding is served instead of dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final

import aiohttp

from strata.core.errors import InvalidSyntax
from strata.core.syntax import validate_did
from strata.identity.dns import DnsLookupError, DnsTxtResolver
from strata.identity.errors import ResolutionFailed
from strata.identity.fetch import BadAnswer, read_limited

MAX_WELL_KNOWN_BYTES: Final = 2048


class HandleResolver:
    """Finds the DID a (normalized, valid) handle points to; no caching.

    In development mode the well-known file is fetched over plain http, and `dev_hosts` maps a
    handle's domain suffix (like `.test`) to the loopback address:port that serves it, with the
    handle sent as the Host header, as a PDS serving many handles expects.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        dns: DnsTxtResolver | None = None,
        dev: bool = False,
        dev_hosts: Mapping[str, str] | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.session = session
        self.dns = dns if dns is not None else DnsTxtResolver(timeout=timeout)
        self.dev = dev
        self.dev_hosts = dict(dev_hosts or {}) if dev else {}
        self.timeout = timeout

    def well_known_url(self, handle: str) -> str:
        """Where the well-known file of `handle` is fetched from."""
        for suffix, address in self.dev_hosts.items():
            if handle.endswith(suffix):
                return f"http://{address}/.well-known/atproto-did"
        scheme = "http" if self.dev else "https"
        return f"{scheme}://{handle}/.well-known/atproto-did"

    async def _from_dns(self, handle: str) -> str | None:
        try:
            return await self.dns.atproto_did(handle)
        except DnsLookupError as exc:
            raise ResolutionFailed(f"DNS: {exc}") from exc

    async def _from_well_known(self, handle: str) -> str | None:
        url = self.well_known_url(handle)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.get(
                    url, allow_redirects=False, headers={"Host": handle}
                ) as response:
                    if response.status != 200:
                        # Any non-200 is "this host does not bind the handle", not a failure.
                        return None
                    body = await read_limited(response, MAX_WELL_KNOWN_BYTES)
        except (aiohttp.ClientError, OSError, TimeoutError, BadAnswer) as exc:
            raise ResolutionFailed(f"{url}: {type(exc).__name__}: {exc}") from exc
        first_line = body.decode("utf-8", "replace").split("\n", 1)[0].strip()
        try:
            return validate_did(first_line)
        except InvalidSyntax:
            return None

    async def resolve(self, handle: str) -> str | None:
        """The DID `handle` claims, or None when no method binds it."""
        results = await asyncio.gather(
            self._from_dns(handle), self._from_well_known(handle), return_exceptions=True
        )
        for result in results:
            if isinstance(result, str):
                return result
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, ResolutionFailed):
                raise failure
        if failures:
            raise ResolutionFailed("; ".join(str(f) for f in failures))
        return None
