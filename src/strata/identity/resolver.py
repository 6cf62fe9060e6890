"""The resolver every service uses: cached, refreshed in the background, stale on error.

A lookup answers from the cache while the entry is fresh. Past freshness it still answers at
once with the cached entry, marked with its age, and refreshes it in the background; if the
sources are failing, the entry keeps being served until it is `serve_stale_for` old. Only a
lookup with nothing cached waits for the network. Concurrent lookups of one key share one fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp
from prometheus_client import Counter

from strata.core.diddoc import DidDocument
from strata.core.errors import InvalidSyntax
from strata.core.syntax import INVALID_HANDLE, normalize_handle, validate_handle
from strata.identity.did import DidResolver
from strata.identity.dns import DnsTxtResolver
from strata.identity.errors import IdentityNotFound, InvalidIdentifier, ResolutionFailed
from strata.identity.handle import HandleResolver
from strata.net.logs import log_event
from strata.resilience import StaleCache

log = logging.getLogger("strata.identity")

RESOLUTIONS = Counter(
    "strata_identity_resolutions_total",
    "Identity lookups by kind and outcome",
    ["kind", "outcome"],
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Resolved(Generic[T]):
    """A resolved value and how old it is; `stale` when older than the freshness lifetime."""

    value: T
    age: float
    stale: bool


@dataclass(frozen=True, slots=True)
class Identity:
    """A DID, its document, and its handle if the handle points back to the DID."""

    did: str
    handle: str
    document: DidDocument
    stale_seconds: float

    @property
    def handle_verified(self) -> bool:
        """Whether the handle and the DID document agree in both directions."""
        return self.handle != INVALID_HANDLE


class _CachedLookup(Generic[T]):
    def __init__(self, kind: str, cache: StaleCache[str, T], clock: Callable[[], float]) -> None:
        self.cache = cache
        self.clock = clock
        self.in_flight: dict[str, asyncio.Task[T | None]] = {}
        # Bound once: looking a labelled child up on every hit would dominate a cached lookup.
        self.outcomes = {
            outcome: RESOLUTIONS.labels(kind, outcome)
            for outcome in ("cached", "stale", "fetched", "not_found", "failed", "refresh_failed")
        }

    def _fetch(self, key: str, fetch: Callable[[], Awaitable[T | None]]) -> asyncio.Task[T | None]:
        task = self.in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch_and_store(key, fetch))
            self.in_flight[key] = task
            task.add_done_callback(lambda _t: self.in_flight.pop(key, None))
        return task

    async def _fetch_and_store(
        self, key: str, fetch: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        try:
            value = await fetch()
        except IdentityNotFound:
            value = None
        self.cache.put(key, value, self.clock())
        return value

    async def get(self, key: str, fetch: Callable[[], Awaitable[T | None]]) -> Resolved[T] | None:
        """The value for `key` (None: authoritatively absent); `ResolutionFailed` if unknown."""
        hit = self.cache.get(key, self.clock())
        if hit is not None:
            if hit.fresh:
                self.outcomes["cached"].inc()
            else:
                self._fetch(key, fetch).add_done_callback(self._log_refresh_failure)
                self.outcomes["stale"].inc()
            if hit.value is None:
                return None
            return Resolved(hit.value, hit.age, not hit.fresh)
        try:
            value = await asyncio.shield(self._fetch(key, fetch))
        except ResolutionFailed:
            self.outcomes["failed"].inc()
            raise
        self.outcomes["fetched" if value is not None else "not_found"].inc()
        return None if value is None else Resolved(value, 0.0, False)

    def _log_refresh_failure(self, task: asyncio.Task[T | None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.outcomes["refresh_failed"].inc()
            log.debug("background refresh failed: %s", task.exception())


class IdentityResolver:
    """DID and handle resolution with caching and failover across PLC directories."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        plc_urls: Sequence[str],
        dev: bool = False,
        dns: DnsTxtResolver | None = None,
        dev_hosts: Mapping[str, str] | None = None,
        timeout: float = 3.0,
        hedge_after: float = 0.25,
        fresh_for: float = 3600.0,
        serve_stale_for: float = 86_400.0,
        negative_for: float = 60.0,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        web_session: aiohttp.ClientSession | None = None,
    ) -> None:
        """`web_session`, when given, fetches what strangers name (did:web documents, handles'
        well-known files) instead of `session`, which stays for the PLC directories."""
        self.dids = DidResolver(
            session,
            plc_urls,
            dev=dev,
            timeout=timeout,
            hedge_after=hedge_after,
            web_session=web_session,
        )
        self.handles = HandleResolver(
            web_session or session, dns=dns, dev=dev, dev_hosts=dev_hosts, timeout=timeout
        )
        self._docs: _CachedLookup[DidDocument] = _CachedLookup(
            "did", StaleCache(capacity, fresh_for, serve_stale_for, negative_for), clock
        )
        self._handle_dids: _CachedLookup[str] = _CachedLookup(
            "handle", StaleCache(capacity, fresh_for, serve_stale_for, negative_for), clock
        )

    async def resolve_did(self, did: str) -> Resolved[DidDocument]:
        """The DID document of `did`; raises `IdentityNotFound` or `ResolutionFailed`."""
        found = await self._docs.get(did, lambda: self.dids.resolve(did))
        if found is None:
            raise IdentityNotFound(f"DID not found: {did}")
        return found

    async def resolve_handle(self, handle: str) -> Resolved[str] | None:
        """The DID a handle points to (not yet checked against the DID's document)."""
        try:
            handle = normalize_handle(validate_handle(handle))
        except InvalidSyntax as exc:
            raise InvalidIdentifier(str(exc)) from exc
        return await self._handle_dids.get(handle, lambda: self.handles.resolve(handle))

    async def _verified_handle(self, document: DidDocument) -> str:
        claimed = document.handle
        if claimed is None:
            return INVALID_HANDLE
        try:
            found = await self.resolve_handle(claimed)
        except (InvalidIdentifier, ResolutionFailed) as exc:
            log_event(log, "handle not verified", logging.DEBUG, did=document.did, error=str(exc))
            return INVALID_HANDLE
        return claimed if found is not None and found.value == document.did else INVALID_HANDLE

    async def resolve(self, identifier: str) -> Identity:
        """Resolve a DID or a handle to an `Identity`, checking the handle in both directions."""
        if identifier.startswith("did:"):
            doc = await self.resolve_did(identifier)
            handle = await self._verified_handle(doc.value)
            return Identity(identifier, handle, doc.value, doc.age if doc.stale else 0.0)
        found = await self.resolve_handle(identifier)
        if found is None:
            raise IdentityNotFound(f"handle not found: {identifier}")
        doc = await self.resolve_did(found.value)
        handle = normalize_handle(identifier)
        verified = handle if doc.value.handle == handle else INVALID_HANDLE
        stale = max(doc.age if doc.stale else 0.0, found.age if found.stale else 0.0)
        return Identity(found.value, verified, doc.value, stale)

    def forget(self, key: str) -> None:
        """Drop a DID or handle from the cache, for example on an #identity event."""
        self._docs.cache.discard(key)
        self._handle_dids.cache.discard(key)
