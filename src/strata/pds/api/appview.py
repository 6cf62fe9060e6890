"""`app.bsky.*` and `chat.bsky.*`: preferences kept here, everything else proxied.

A proxied call goes to the service the client names in its `atproto-proxy` header
(`did#service`), or else to the configured AppViews in order, carrying a service token that the
account signs for the method (`lxm`). Reads fail over to the next AppView; writes go to one
AppView, never to two. A service named in the header that is not a configured AppView is
reached at its endpoint's origin only, without following redirects, and (but in development)
only at public addresses, so that a DID document cannot point the PDS at its own network.
Answers are read up to a size cap, never whole. The last good answer to each account's feed,
timeline, profile and thread reads is remembered: when no AppView can answer, it is served
with a `strata-stale-seconds` header saying how old it is, up to `serve_stale_for` old.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from strata.core import cbor
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.identity.errors import ResolutionFailed
from strata.identity.service_did import fetch_service_did
from strata.net.bounded import read_at_most
from strata.net.errors import XrpcError, invalid_request
from strata.net.logs import log_event
from strata.net.public_fetch import NotPublic, check_literal
from strata.net.server import json_response
from strata.net.upstream import STALE_ANSWERS, UpstreamPool, UpstreamUnavailable
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.auth import APP_PASS, Credentials
from strata.pds.config import AppView
from strata.pds.oauth.scopes import Need
from strata.pds.service import Pds
from strata.resilience import TIMEOUT_HEADER, Deadline, StaleCache, parse_timeout_ms

log = logging.getLogger("strata.pds.appview")

PREFERENCE_NAMESPACE: Final = "app.bsky"
FULL_ACCESS_PREFERENCES: Final = frozenset({"app.bsky.actor.defs#personalDetailsPref"})
PROXIED_PREFIXES: Final = ("app.bsky.", "chat.bsky.")
PUSH_METHODS: Final = frozenset(
    {"app.bsky.notification.registerPush", "app.bsky.notification.unregisterPush"}
)
"""Sent to the notification service their body names, not to the AppViews in turn."""
NOTIFICATION_SERVICE: Final = "BskyNotificationService"
REPORT_METHOD: Final = "com.atproto.moderation.createReport"
FORWARDED_HEADERS: Final = ("accept-language", "atproto-accept-labelers", "content-type")
RETURNED_HEADERS: Final = (
    "content-type",
    "content-language",
    "atproto-content-labelers",
    "atproto-repo-rev",
    "strata-stale-seconds",
    "strata-stale-reason",
    "strata-degraded",
)
MAX_PROXIED_BODY: Final = 10 << 20
MAX_PROXIED_ANSWER: Final = 16 << 20
PROXY_TIMEOUT: Final = 10.0
REMEMBERED_READS: Final = frozenset(
    {
        "app.bsky.feed.getTimeline",
        "app.bsky.feed.getFeed",
        "app.bsky.feed.getAuthorFeed",
        "app.bsky.feed.getPostThread",
        "app.bsky.feed.getPosts",
        "app.bsky.feed.getFeedGenerator",
        "app.bsky.feed.getFeedGenerators",
        "app.bsky.actor.getProfile",
        "app.bsky.actor.getProfiles",
        "app.bsky.notification.listNotifications",
        "app.bsky.graph.getFollows",
        "app.bsky.graph.getFollowers",
    }
)
"""The reads whose last good answer is kept per account, to serve when no AppView answers."""
WAIT_WHEN_REMEMBERED: Final = 3.0
"""Seconds an AppView is waited for when a remembered answer could be served instead: longer
than the AppView waits for a feed generator when it has a page of its own to serve (2 s)."""
REMEMBERED_BYTES: Final = 64 << 20
REMEMBERED_ANSWER_MAX: Final = 1 << 20

Answer = tuple[int, bytes, dict[str, str]]


def service_origin(endpoint: str) -> str:
    """The origin (`scheme://host[:port]`) of a service endpoint from a DID document: the
    proxied path is always `/xrpc/<nsid>`, whatever path the document gives."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise invalid_request(f"invalid proxy service endpoint: {endpoint!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise invalid_request(f"invalid proxy service endpoint: {endpoint!r}")
    return f"{parts.scheme}://{parts.netloc}"


def register(router: XrpcRouter, pds: Pds) -> None:
    # As the reference: a deactivated account reads and writes its preferences (a migration
    # copies them before the account is activated).
    preferences_access = pds.auth.access(allow_deactivated=True, oauth=Need.RPC)

    @router.query("app.bsky.actor.getPreferences", auth=preferences_access)
    async def get_preferences(call: Call[Credentials]) -> web.Response:
        prefs = pds.stores.open(call.auth.did).preferences()
        if call.auth.limited:
            prefs = [p for p in prefs if p.get("$type") not in FULL_ACCESS_PREFERENCES]
        return json_response({"preferences": prefs})

    @router.procedure("app.bsky.actor.putPreferences", auth=preferences_access)
    async def put_preferences(call: Call[Credentials]) -> web.Response:
        raw = cbor.to_json(call.body).get("preferences") if isinstance(call.body, dict) else None
        if not isinstance(raw, list):
            raise invalid_request("preferences must be an array")
        for pref in raw:
            kind = pref.get("$type") if isinstance(pref, dict) else None
            if not isinstance(kind, str) or not kind.startswith(PREFERENCE_NAMESPACE + "."):
                raise invalid_request("Some preferences are not in the app.bsky namespace")
            if kind in FULL_ACCESS_PREFERENCES and call.auth.limited:
                raise invalid_request(f"Do not have authorization to set preferences: {kind}")
        pds.stores.open(call.auth.did).put_preferences(raw, PREFERENCE_NAMESPACE)
        return web.Response(status=200)


def _answered_for_upstream(status: int, content: bytes) -> bool:
    """Whether a 502/504 is the AppView's own answer about a service behind it (a feed
    generator that failed), which is passed on, rather than a sign that the AppView is down."""
    if status not in (502, 504):
        return False
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") in ("UpstreamFailure", "UpstreamTimeout")


class AppViewBusy(Exception):
    """The AppView shed the call (503): it is up, but over capacity."""

    def __init__(self, url: str, retry_after: str) -> None:
        super().__init__(f"{url}: busy")
        self.retry_after = retry_after if retry_after.isdigit() else "1"


class Proxy:
    """Forwards calls the PDS does not serve itself."""

    def __init__(self, pds: Pds) -> None:
        self.pds = pds
        self.appviews = pds.config.appviews
        self.dids = {a.url: a.did for a in self.appviews if a.did is not None}
        """The DID each configured AppView answers as, as given or once learned."""
        self.pool = (
            UpstreamPool("appview", [a.url for a in self.appviews], timeout=PROXY_TIMEOUT)
            if self.appviews
            else None
        )
        self.verify = pds.auth.access(oauth=Need.RPC)
        self.remembered: StaleCache[tuple[str, ...], Answer] = StaleCache(
            capacity=100_000,
            fresh_for=0.0,
            serve_stale_for=pds.config.serve_stale_for,
            weigh=lambda answer: len(answer[1]),
            max_weight=REMEMBERED_BYTES,
        )

    def describe(self) -> list[dict[str, Any]]:
        """The AppViews, for `/xrpc/_upstreams`."""
        if self.pool is None:
            return []
        listed = self.pool.describe("appview")
        for entry, appview in zip(listed, self.appviews, strict=True):
            entry["did"] = self.dids.get(appview.url)
        return listed

    async def _did_of(self, url: str) -> str:
        """The DID of a configured AppView, learned from its document the first time it is
        needed when the operator gave only its URL (so an AppView that is down at start
        delays nothing)."""
        did = self.dids.get(url)
        if did is None:
            try:
                did = await fetch_service_did(self.pds.session, url, "bsky_appview")
            except ResolutionFailed as exc:
                raise UpstreamUnavailable(f"{url}: its DID is unknown ({exc})") from exc
            self.dids[url] = did
            log_event(log, "appview did learned", url=url, did=did)
        return did

    async def _target(self, request: web.Request, nsid: str) -> AppView | None:
        """The service the client named; None for the configured AppViews, in order."""
        if nsid in PUSH_METHODS:
            return await self._notification_service(request, nsid)
        header = request.headers.get("atproto-proxy")
        if header is None and nsid == REPORT_METHOD:
            # As the reference PDS: reports go to the configured report service.
            report = self.pds.config.report_service
            if report is None:
                raise invalid_request(f"No service configured for {nsid}")
            return report
        if header is None:
            if not nsid.startswith("app.bsky."):
                raise XrpcError(
                    501,
                    "MethodNotImplemented",
                    f"{nsid}: name the service to proxy to in the atproto-proxy header",
                )
            if not self.appviews:
                raise XrpcError(
                    501,
                    "MethodNotImplemented",
                    f"{nsid}: this PDS has no AppView configured (start one and pass "
                    "--appview URL)",
                )
            return None
        did, sep, service_id = header.partition("#")
        if not sep or not did.startswith("did:") or not service_id:
            raise invalid_request("atproto-proxy must be a DID and a service id: did:...#service")
        for url, known in self.dids.items():
            if known == did:
                return AppView(url, did)
        doc = await self.pds.did_document(did)
        endpoint = doc.service_endpoint(service_id) if doc is not None else None
        if endpoint is None:
            raise invalid_request(f"could not resolve proxy did service url: {header}")
        return self._stranger(did, endpoint)

    def _stranger(self, did: str, endpoint: str) -> AppView:
        """A service a DID document names (not one the operator configured): its origin,
        which outside development must not be an address of the PDS's own network."""
        origin = service_origin(endpoint)
        if not self.pds.config.dev:
            try:
                check_literal(origin)
            except NotPublic as exc:
                raise invalid_request(f"proxy service endpoint is not public: {did}") from exc
        return AppView(origin, did)

    async def _notification_service(self, request: web.Request, nsid: str) -> AppView:
        """Where a push registration goes: the service its body names (`serviceDid`), as the
        reference PDS routes it (a configured AppView by its DID, any other by the
        `#bsky_notif` service of its DID document)."""
        try:
            body = cbor.from_json(json.loads(await request.read()))
            self.pds.catalog.validate_input(nsid, body)
        except (ValueError, CoreError) as exc:
            raise invalid_request(f"Input {exc}") from exc
        did = body["serviceDid"]
        for url, known in self.dids.items():
            if known == did:
                return AppView(url, did)
        doc = await self.pds.did_document(did)
        endpoint = doc.service_endpoint("bsky_notif", NOTIFICATION_SERVICE) if doc else None
        if endpoint is None:
            raise invalid_request(f"invalid notification service details in did document: {did}")
        return self._stranger(did, endpoint)

    async def __call__(self, request: web.Request, nsid: str) -> web.StreamResponse:
        if (
            not nsid.startswith(PROXIED_PREFIXES)
            and "atproto-proxy" not in request.headers
            and nsid != REPORT_METHOD
        ):
            raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")
        credentials: Credentials = await self.verify(request, nsid)
        key = self._memory_key(request, nsid, credentials)
        # With an answer to fall back on, a hanging AppView is not waited for long.
        kept_before = key is not None and self.remembered.get(key, time.monotonic()) is not None
        wait = WAIT_WHEN_REMEMBERED if kept_before else PROXY_TIMEOUT
        try:
            status, content, kept = await self._forward(request, nsid, credentials, wait)
        except XrpcError as exc:
            unreachable = "appview-unreachable"
            remembered = self._remembered(key, nsid, unreachable) if exc.status >= 500 else None
            if remembered is not None:
                return remembered
            local = self._local_profile(request, nsid) if exc.status in (501, 502) else None
            if local is None:
                raise
            return json_response(local, headers={"strata-degraded": "local-profile"})
        if key is not None and status == 200 and len(content) <= REMEMBERED_ANSWER_MAX:
            if "strata-stale-seconds" not in kept:
                self.remembered.put(key, (status, content, kept), time.monotonic())
        elif key is not None and status >= 500:
            # The AppView answered, but for a failure behind it (a feed generator that is
            # down): an older answer of its own is better than none.
            remembered = self._remembered(key, nsid, "appview-upstream-failed")
            if remembered is not None:
                return remembered
        return web.Response(status=status, body=content, headers=kept)

    def _memory_key(
        self, request: web.Request, nsid: str, credentials: Credentials
    ) -> tuple[str, ...] | None:
        if request.method != "GET" or nsid not in REMEMBERED_READS:
            return None
        query = "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
        return (credentials.did, nsid, query, request.headers.get("atproto-proxy", ""))

    def _remembered(
        self, key: tuple[str, ...] | None, nsid: str, reason: str
    ) -> web.Response | None:
        """The last good answer for `key`, marked with its age and why it is served, if one is
        kept."""
        hit = self.remembered.get(key, time.monotonic()) if key is not None else None
        if hit is None or hit.value is None:
            return None
        status, content, kept = hit.value
        STALE_ANSWERS.labels("pds", nsid).inc()
        headers = {
            **kept,
            "strata-stale-seconds": str(int(hit.age)),
            "strata-stale-reason": reason,
        }
        return web.Response(status=status, body=content, headers=headers)

    def _local_profile(self, request: web.Request, nsid: str) -> dict[str, Any] | None:
        """A profile of one of this PDS's own accounts, from its own records, for when no
        AppView can answer: enough for a client to sign in and show who is signed in."""
        if nsid != "app.bsky.actor.getProfile" or "atproto-proxy" in request.headers:
            return None
        account = self.pds.accounts.lookup(request.query.get("actor", ""))
        if account is None or not account.active:
            return None
        store = self.pds.stores.open(account.did)
        view: dict[str, Any] = {"did": account.did, "handle": account.handle or "handle.invalid"}
        cid = store.record_cid("app.bsky.actor.profile", "self")
        if cid is not None:
            record = cbor.decode(store.blocks[CID.from_str(cid)])
            if isinstance(record, dict):
                for field in ("displayName", "description", "createdAt"):
                    if isinstance(record.get(field), str):
                        view[field] = record[field]
                for field in ("avatar", "banner"):
                    ref = record.get(field)
                    if isinstance(ref, dict) and isinstance(ref.get("ref"), CID):
                        view[field] = (
                            f"{self.pds.config.public_url}/xrpc/com.atproto.sync.getBlob"
                            f"?did={account.did}&cid={ref['ref']}"
                        )
        return view

    async def _feed_token(
        self, session: aiohttp.ClientSession, url: str, aud: str, did: str, request: web.Request
    ) -> str:
        """`getFeed` carries a token for the feed's generator, which the AppView passes on to
        it: the AppView names the generator (`getFeedGenerator`), as the reference PDS asks."""
        nsid = "app.bsky.feed.getFeedGenerator"
        async with session.get(
            f"{url}/xrpc/{nsid}",
            params={"feed": request.query.get("feed", "")},
            allow_redirects=False,
            headers={"Authorization": f"Bearer {self.pds.service_jwt(did, aud, nsid)}"},
        ) as response:
            body = await response.json(content_type=None) if response.status == 200 else None
            if response.status >= 500:
                raise UpstreamUnavailable(f"{url}: status {response.status}")
        view = body.get("view") if isinstance(body, dict) else None
        feed_did = view.get("did") if isinstance(view, dict) else None
        if not isinstance(feed_did, str) or not feed_did.startswith("did:"):
            # The AppView does not know the feed: let it say so in its answer to getFeed.
            feed_did = aud
        return self.pds.service_jwt(did, feed_did, "app.bsky.feed.getFeedSkeleton")

    async def _forward(
        self, request: web.Request, nsid: str, credentials: Credentials, wait: float
    ) -> Answer:
        if credentials.scope == APP_PASS and nsid.startswith("chat.bsky."):
            raise invalid_request("Bad token method: app passwords cannot reach chat services")
        target = await self._target(request, nsid)
        body = await request.read() if request.method == "POST" else None
        if body is not None and len(body) > MAX_PROXIED_BODY:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large")
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        report = self.pds.config.report_service
        configured = (
            target is None or target.url in self.dids or (report is not None and target == report)
        )
        session = self.pds.session if configured else self.pds.outward_session
        budget = parse_timeout_ms(request.headers.get(TIMEOUT_HEADER)) or PROXY_TIMEOUT
        deadline = Deadline.after(time.monotonic(), min(budget, wait))

        async def attempt(url: str) -> Answer:
            aud = target.did if target is not None and target.did else await self._did_of(url)
            if nsid == "app.bsky.feed.getFeed":
                token = await self._feed_token(session, url, aud, credentials.did, request)
            else:
                token = self.pds.service_jwt(credentials.did, aud, nsid)
            # The AppView gets what is left of this request's time, less a margin to answer.
            left = deadline.timeout(time.monotonic(), PROXY_TIMEOUT, margin=0.1)
            async with session.request(
                request.method,
                f"{url}/xrpc/{nsid}",
                params=request.query,
                data=body,
                headers={
                    **headers,
                    "Authorization": f"Bearer {token}",
                    TIMEOUT_HEADER: str(int(left * 1000)),
                },
                allow_redirects=False,
            ) as response:
                content = await read_at_most(response.content, MAX_PROXIED_ANSWER)
                if len(content) > MAX_PROXIED_ANSWER:
                    raise XrpcError(
                        502, "UpstreamFailure", f"{nsid}: the answer is larger than allowed"
                    )
                if response.status == 503 and request.method == "GET":
                    raise AppViewBusy(url, response.headers.get("Retry-After", "1"))
                if (
                    response.status >= 500
                    and request.method == "GET"
                    and not _answered_for_upstream(response.status, content)
                ):
                    raise UpstreamUnavailable(f"{url}: status {response.status}")
                kept = {h: response.headers[h] for h in RETURNED_HEADERS if h in response.headers}
                return response.status, content, kept

        try:
            if target is not None:
                async with asyncio.timeout(deadline.remaining(time.monotonic())):
                    return await attempt(target.url)
            assert self.pool is not None
            return await self.pool.call(
                attempt, idempotent=request.method == "GET", deadline=deadline
            )
        except NotPublic as exc:
            raise invalid_request(f"proxy service endpoint is not public: {exc}") from exc
        except (
            UpstreamUnavailable,
            AppViewBusy,
            aiohttp.ClientError,
            OSError,
            TimeoutError,
        ) as exc:
            causes = exc.causes if isinstance(exc, UpstreamUnavailable) else [exc]
            if causes and all(isinstance(c, AppViewBusy) for c in causes):
                # Every AppView is shedding load: say so, and when to come back.
                wait = max(int(c.retry_after) for c in causes if isinstance(c, AppViewBusy))
                raise XrpcError(
                    503,
                    "NotEnoughResources",
                    f"{nsid}: the AppView is busy; retry later",
                    headers={"Retry-After": str(wait)},
                ) from exc
            raise XrpcError(
                502, "UpstreamFailure", f"{nsid}: the AppView did not answer ({exc})"
            ) from exc
