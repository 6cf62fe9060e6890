"""The labeler's HTTP application: `queryLabels`, the `subscribeLabels` stream, `createReport`
(from accounts, through their PDS, with a service token), and the operator's endpoints behind
HTTP basic auth as `admin` (`POST /admin/label`, `GET /admin/reports`)."""

from __future__ import annotations

import json
from typing import Any, Final

import aiohttp
from aiohttp import web

from strata.core import cbor
from strata.core.errors import CoreError
from strata.core.label import LabelError
from strata.core.lexicon import Catalog
from strata.core.syntax import validate_at_uri, validate_did
from strata.identity import IdentityResolver
from strata.labeler.service import Labeler
from strata.net.basic_auth import is_admin
from strata.net.errors import XrpcError, invalid_request
from strata.net.firehose import serve_event_stream
from strata.net.public_fetch import outward_session
from strata.net.server import create_app, json_response, run_alongside
from strata.net.service_auth import ServiceAuth
from strata.net.xrpc import Call, XrpcRouter

MAX_QUERY_PATTERNS: Final = 25


def _admin(labeler: Labeler, request: web.Request) -> None:
    kind, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "basic" or not is_admin(credentials, labeler.secrets.admin_password):
        raise XrpcError(401, "AuthenticationRequired", "admin credentials required")


def _subject(body: Any) -> str:
    """The at:// URI or DID a label is put on."""
    if not isinstance(body, dict) or not isinstance(body.get("uri"), str):
        raise invalid_request("uri (an at:// URI or a DID) is required")
    uri: str = body["uri"]
    try:
        validate_did(uri) if uri.startswith("did:") else validate_at_uri(uri)
    except CoreError as exc:
        raise invalid_request(f"uri: {exc}") from None
    return uri


def create_labeler_app(labeler: Labeler, plc_urls: tuple[str, ...], dev: bool) -> web.Application:
    """The application serving `labeler`; it verifies report tokens against `plc_urls`."""

    async def health() -> None:
        labeler.store.reader.execute("SELECT 1").fetchone()

    app = create_app("labeler", health=health)
    router = XrpcRouter(Catalog.bundled())
    session: aiohttp.ClientSession | None = None
    outward: aiohttp.ClientSession | None = None
    auth: ServiceAuth | None = None

    async def start() -> None:
        nonlocal session, outward, auth
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        outward = outward_session(dev, timeout=10)
        resolver = IdentityResolver(session, plc_urls, dev=dev, web_session=outward)
        auth = ServiceAuth(resolver, labeler.did, "labeler")

    async def stop() -> None:
        if outward is not None:
            await outward.close()
        if session is not None:
            await session.close()
        labeler.store.close()

    run_alongside(app, start, stop)

    async def reporter(request: web.Request, nsid: str) -> str:
        assert auth is not None
        caller = await auth.viewer(request, nsid)
        if caller is None:
            raise XrpcError(401, "AuthenticationRequired", "a service token is required")
        return caller

    @router.query("com.atproto.label.queryLabels")
    async def query_labels(call: Call[None]) -> web.StreamResponse:
        patterns = list(call.params["uriPatterns"])
        if len(patterns) > MAX_QUERY_PATTERNS:
            raise invalid_request(f"at most {MAX_QUERY_PATTERNS} uriPatterns")
        sources = call.params.get("sources")
        cursor = call.params.get("cursor") or "0"
        if not cursor.isdigit() or len(cursor) > 18:
            raise invalid_request("Malformed cursor")
        limit = call.params.get("limit", 50)
        found = [] if sources and labeler.did not in sources else labeler.store.query(
            patterns, int(cursor), limit
        )  # fmt: skip
        body: dict[str, Any] = {"labels": [cbor.to_json(label) for _, label in found]}
        if len(found) == limit:
            body["cursor"] = str(found[-1][0])
        return json_response(body)

    @router.query("com.atproto.label.subscribeLabels")
    async def subscribe_labels(call: Call[None]) -> web.StreamResponse:
        return await serve_event_stream("labeler", labeler, call.request, call.params.get("cursor"))

    @router.procedure("com.atproto.moderation.createReport", auth=reporter)
    async def create_report(call: Call[str]) -> web.StreamResponse:
        body = call.body
        report = labeler.report(body["reasonType"], body.get("reason"), body["subject"], call.auth)
        return json_response(report)

    async def label(request: web.Request) -> web.Response:
        _admin(labeler, request)
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            raise invalid_request("body must be a JSON object") from None
        uri = _subject(body)
        fields = {k: body.get(k) for k in ("val", "cid", "exp")}
        neg = body.get("neg", False)
        if not isinstance(neg, bool) or any(
            v is not None and not isinstance(v, str) for v in fields.values()
        ):
            raise invalid_request("val, cid and exp are strings, neg a boolean")
        if not fields["val"]:
            raise invalid_request("val (the label's value) is required")
        try:
            emitted = labeler.label(uri, fields["val"], fields["cid"], neg, fields["exp"])
        except LabelError as exc:
            raise invalid_request(str(exc)) from None
        return json_response(cbor.to_json(emitted))

    async def reports(request: web.Request) -> web.Response:
        _admin(labeler, request)
        before = request.query.get("cursor")
        if before is not None and (not before.isdigit() or len(before) > 18):
            raise invalid_request("Malformed cursor")
        limit_text = request.query.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise invalid_request("limit is 1 to 100")
        found = labeler.store.reports(int(before) if before else None, int(limit_text))
        body: dict[str, Any] = {"reports": found}
        if len(found) == int(limit_text):
            body["cursor"] = str(found[-1]["id"])
        return json_response(body)

    router.mount(app)
    app.router.add_post("/admin/label", label)
    app.router.add_get("/admin/reports", reports)

    async def root(request: web.Request) -> web.Response:
        return web.Response(text=f"This is an AT Protocol labeler (Strata): {labeler.did}\n")

    app.router.add_get("/", root)
    return app
