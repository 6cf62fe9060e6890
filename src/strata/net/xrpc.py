"""XRPC methods on an aiohttp application, checked against their lexicons.

A handler is registered for an NSID as a query (GET) or a procedure (POST). Before it runs,
the parameters are converted to their lexicon types and validated, a JSON input body is parsed
into the data model and validated, and the method's authentication runs; any failure answers
with the XRPC error envelope and the handler never sees the request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from aiohttp import web
from multidict import MultiMapping

from strata.core import cbor
from strata.core.errors import CoreError
from strata.core.lexicon import Catalog
from strata.core.lexicon.schema import (
    ArrayDef,
    BooleanDef,
    IntegerDef,
    ParamsDef,
    ProcedureDef,
    QueryDef,
    SubscriptionDef,
)
from strata.net.errors import XrpcError, invalid_request

A = TypeVar("A")


@dataclass
class Call(Generic[A]):
    """One XRPC call as a handler sees it."""

    request: web.Request
    nsid: str
    params: dict[str, Any]
    body: Any
    """The JSON input in the data model (CIDs and bytes decoded), or None for other encodings;
    a handler taking raw input reads `request.content` itself."""
    auth: A


Handler = Callable[[Call[Any]], Awaitable[web.StreamResponse]]
Verifier = Callable[[web.Request, str], Awaitable[Any]]
Fallback = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


DEFAULT_JSON_LIMIT: Final = 150 * 1024
"""The reference's limit on a JSON body; record writes allow more (`json_limit`)."""


@dataclass(frozen=True)
class _Method:
    nsid: str
    http_method: str
    handler: Handler
    auth: Verifier | None
    json_input: bool
    json_limit: int


def _convert(name: str, prop: object, values: list[str]) -> Any:
    if isinstance(prop, ArrayDef):
        return [_convert(name, prop.items, [v]) for v in values]
    value = values[-1]
    if isinstance(prop, IntegerDef):
        try:
            return int(value)
        except ValueError:
            raise invalid_request(f"{name} must be an integer") from None
    if isinstance(prop, BooleanDef):
        if value not in ("true", "false"):
            raise invalid_request(f"{name} must be true or false")
        return value == "true"
    return value


def parse_params(schema: ParamsDef | None, query: MultiMapping[str]) -> dict[str, Any]:
    """Query-string parameters converted to the types their lexicon gives them."""
    out: dict[str, Any] = {}
    if schema is None:
        return out
    for name, prop in schema.properties.items():
        values = query.getall(name, [])
        if values:
            out[name] = _convert(name, prop, list(values))
    return out


class XrpcRouter:
    """The XRPC methods one service serves."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.methods: dict[str, _Method] = {}

    def _register(
        self,
        nsid: str,
        http_method: str,
        auth: Verifier | None,
        json_input: bool,
        json_limit: int = DEFAULT_JSON_LIMIT,
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.methods[nsid] = _Method(nsid, http_method, handler, auth, json_input, json_limit)
            return handler

        return decorate

    def query(self, nsid: str, auth: Verifier | None = None) -> Callable[[Handler], Handler]:
        """Register a GET method."""
        return self._register(nsid, "GET", auth, json_input=False)

    def procedure(
        self,
        nsid: str,
        auth: Verifier | None = None,
        raw_input: bool = False,
        json_limit: int = DEFAULT_JSON_LIMIT,
    ) -> Callable[[Handler], Handler]:
        """Register a POST method; `raw_input` leaves the body unread for the handler."""
        return self._register(nsid, "POST", auth, not raw_input, json_limit)

    async def dispatch(self, request: web.Request, fallback: Fallback | None) -> web.StreamResponse:
        """Answer `/xrpc/{nsid}`."""
        nsid = request.match_info["nsid"]
        method = self.methods.get(nsid)
        if method is None:
            if fallback is not None:
                return await fallback(request, nsid)
            raise XrpcError(501, "MethodNotImplemented", "Method Not Implemented")
        if request.method != method.http_method and not (
            request.method == "HEAD" and method.http_method == "GET"
        ):
            raise invalid_request(
                f"Incorrect HTTP method ({request.method}) expected {method.http_method}"
            )
        schema = self.catalog.find(nsid)
        methods = QueryDef | ProcedureDef | SubscriptionDef
        params_schema = schema.parameters if isinstance(schema, methods) else None
        params = parse_params(params_schema, request.query)
        try:
            if schema is not None:
                self.catalog.validate_params(nsid, params)
        except CoreError as exc:
            raise invalid_request(str(exc)) from exc
        auth = await method.auth(request, nsid) if method.auth is not None else None
        body = None
        if method.json_input and request.method == "POST":
            body = await self._json_input(request, nsid, schema, method.json_limit)
        return await method.handler(Call(request, nsid, params, body, auth))

    async def _json_input(self, request: web.Request, nsid: str, schema: object, limit: int) -> Any:
        if isinstance(schema, ProcedureDef) and schema.input is None:
            return None
        if request.content_type != "application/json":
            raise invalid_request(
                f"Wrong request encoding (Content-Type): {request.content_type or 'none'}"
            )
        too_large = XrpcError(413, "PayloadTooLarge", "request entity too large")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        data = bytearray()
        async for chunk in request.content.iter_chunked(1 << 16):
            data += chunk
            if len(data) > limit:
                raise too_large
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise invalid_request("Request body is not valid JSON") from None
        try:
            body = cbor.from_json(raw)
            if schema is not None:
                self.catalog.validate_input(nsid, body)
        except CoreError as exc:
            raise invalid_request(f"Input {exc}") from exc
        return body

    def mount(self, app: web.Application, fallback: Fallback | None = None) -> None:
        """Route `/xrpc/{nsid}` on `app` to these methods (and the rest to `fallback`)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.dispatch(request, fallback)

        app.router.add_route("*", "/xrpc/{nsid}", handle)
