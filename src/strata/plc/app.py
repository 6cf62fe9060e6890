"""The directory's HTTP API, with the reference directory's routes and answers.

Errors carry `message` (what the reference clients read) and `error` (the XRPC envelope).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
from aiohttp import web

from strata.core.plc import (
    DocumentData,
    IndexedOp,
    PlcError,
    document_data,
    format_did_document,
    parse_operation,
    validate_plc_did,
)
from strata.net.bounded import read_at_most
from strata.net.errors import XrpcError, invalid_request, not_found, upstream_failure
from strata.net.logs import log_event
from strata.net.server import create_app, json_response
from strata.plc.directory import Directory
from strata.plc.mirror import Mirror
from strata.plc.store import PlcStore, format_created_at, parse_created_at

log = logging.getLogger("strata.plc")

MAX_EXPORT_COUNT: Final = 1000
MAX_OP_REQUEST_BYTES: Final = 64 * 1024
_DIGITS: Final = re.compile(r"\d+")

DIRECTORY_KEY = web.AppKey("directory", Directory)
PRIMARY_KEY = web.AppKey("primary", str)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)


def _did(request: web.Request) -> str:
    did = request.match_info["did"]
    try:
        return validate_plc_did(did)
    except PlcError as exc:
        raise invalid_request(str(exc)) from exc


def _store(request: web.Request) -> PlcStore:
    return request.app[DIRECTORY_KEY].store


async def _current(request: web.Request) -> DocumentData:
    did = _did(request)
    last = await _store(request).last_op(did)
    if last is None:
        raise not_found(f"DID not registered: {did}")
    data = document_data(did, last)
    if data is None:
        raise not_found(f"DID not available: {did}")
    return data


async def get_document(request: web.Request) -> web.Response:
    document = format_did_document(await _current(request))
    return json_response(document, content_type="application/did+ld+json")


async def get_data(request: web.Request) -> web.Response:
    return json_response((await _current(request)).to_json())


async def get_log(request: web.Request) -> web.Response:
    did = _did(request)
    ops = await _store(request).ops_for_did(did)
    if not ops:
        raise not_found(f"DID not registered: {did}")
    return json_response([op.operation for op in ops])


def _indexed_json(op: IndexedOp) -> dict[str, Any]:
    # One shape for the audit log and the legacy export, as in the reference directory.
    return {
        "did": op.did,
        "operation": op.operation,
        "cid": op.cid,
        "nullified": op.nullified,
        "createdAt": format_created_at(op.created_at_ms),
    }


async def get_audit_log(request: web.Request) -> web.Response:
    did = _did(request)
    ops = await _store(request).ops_for_did(did, include_nullified=True)
    if not ops:
        raise not_found(f"DID not registered: {did}")
    return json_response([_indexed_json(op) for op in ops])


async def get_last(request: web.Request) -> web.Response:
    did = _did(request)
    last = await _store(request).last_op(did)
    if last is None:
        raise not_found(f"DID not registered: {did}")
    return json_response(last)


async def _read_operation(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_OP_REQUEST_BYTES:
        raise XrpcError(413, "PayloadTooLarge", "Operation request body too large")
    body = await read_at_most(request.content, MAX_OP_REQUEST_BYTES)
    if len(body) > MAX_OP_REQUEST_BYTES:
        raise XrpcError(413, "PayloadTooLarge", "Operation request body too large")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid_request(f"Request body is not JSON: {exc}") from exc


async def post_operation(request: web.Request) -> web.Response:
    did = _did(request)
    body = await _read_operation(request)
    primary = request.app.get(PRIMARY_KEY)
    if primary is not None:
        return await _forward(request, primary, did, body)
    try:
        op = parse_operation(body)
        await request.app[DIRECTORY_KEY].submit(did, op)
    except PlcError as exc:
        log_event(log, "operation rejected", logging.DEBUG, did=did, reason=str(exc))
        raise XrpcError(400, type(exc).__name__, str(exc)) from exc
    # As the reference directory answers (express `sendStatus(200)`).
    return web.Response(text="OK")


async def _forward(request: web.Request, primary: str, did: str, body: Any) -> web.Response:
    # A mirror never writes its own copy: the operation reaches it back through the export.
    session = request.app[SESSION_KEY]
    try:
        async with asyncio.timeout(10):
            async with session.post(f"{primary}/{did}", json=body) as upstream:
                payload = await upstream.read()
                return web.Response(
                    status=upstream.status,
                    body=payload,
                    content_type=upstream.content_type or "application/json",
                )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise upstream_failure(
            f"This directory is a read-only mirror and its primary {primary} did not answer: "
            f"{type(exc).__name__}"
        ) from exc


def _export_count(request: web.Request) -> int:
    raw = request.query.get("count")
    if raw is None:
        return MAX_EXPORT_COUNT
    if not _DIGITS.fullmatch(raw) or int(raw) < 1:
        raise invalid_request("Invalid count parameter")
    return min(int(raw), MAX_EXPORT_COUNT)


async def export(request: web.Request) -> web.StreamResponse:
    count = _export_count(request)
    after = request.query.get("after")
    store = _store(request)
    lines: list[dict[str, Any]]
    if after is not None and _DIGITS.fullmatch(after):
        lines = [event.export_json() for event in await store.export_seq(int(after), count)]
    else:
        after_ms = None
        if after is not None:
            try:
                after_ms = parse_created_at(after)
            except ValueError as exc:
                raise invalid_request("Invalid after parameter") from exc
        lines = [_indexed_json(op) for op in await store.export_legacy(after_ms, count)]
    body = "\n".join(json.dumps(line, separators=(",", ":")) for line in lines)
    return web.Response(text=body, content_type="application/jsonlines")


async def export_stream(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("cursor")
    if raw is not None and not _DIGITS.fullmatch(raw):
        raise invalid_request("Invalid cursor parameter")
    ws = web.WebSocketResponse(heartbeat=30)
    if not ws.can_prepare(request).ok:
        raise XrpcError(426, "UpgradeRequired", "upgrade required")
    await ws.prepare(request)
    directory = request.app[DIRECTORY_KEY]
    sub = directory.subscribe()
    try:
        last = await directory.store.last_seq() if raw is None else int(raw)
        if raw is not None and last > await directory.store.last_seq():
            await ws.close(code=1000, message=b"FutureCursor")
            return ws
        # Subscribed before the backfill query, so nothing accepted meanwhile is missed. If the
        # live buffer overflowed during a long backfill, subscribe afresh and read on from disk.
        while True:
            while backlog := await directory.store.export_seq(last, 500):
                for event in backlog:
                    await ws.send_str(json.dumps(event.export_json()))
                    last = event.seq
            if not sub.overflowed.is_set():
                break
            directory.unsubscribe(sub)
            sub = directory.subscribe()
        while not ws.closed:
            get = asyncio.ensure_future(sub.queue.get())
            overflow = asyncio.ensure_future(sub.overflowed.wait())
            done, _ = await asyncio.wait({get, overflow}, return_when=asyncio.FIRST_COMPLETED)
            get.cancel()
            overflow.cancel()
            if get in done:
                event = get.result()
                if event.seq > last:
                    await ws.send_str(json.dumps(event.export_json()))
                    last = event.seq
            elif sub.queue.empty():
                await ws.close(code=1000, message=b"ConsumerTooSlow")
    except ConnectionResetError:
        pass
    finally:
        directory.unsubscribe(sub)
    return ws


async def index(request: web.Request) -> web.Response:
    mode = "mirror" if PRIMARY_KEY in request.app else "primary"
    return web.Response(text=f"Strata PLC directory ({mode}). See /export and /:did.\n")


def create_plc_app(
    store: PlcStore, mirror_of: Sequence[str] = (), mirroring: bool = True
) -> web.Application:
    """The directory application. With `mirror_of`, a read-only mirror of those directories:
    it forwards writes to the first of them, and (unless `mirroring` is off, in every process
    of a mirror but one) copies their logs."""
    directory = Directory(store)

    async def health() -> None:
        await store.db.fetchrow("SELECT 1")

    # The reference directory answers health checks on /_health.
    app = create_app("plc", health=health, health_paths=("/xrpc/_health", "/_health"))
    app[DIRECTORY_KEY] = directory
    if mirror_of:
        app[PRIMARY_KEY] = mirror_of[0].rstrip("/")

    async def lifecycle(app: web.Application) -> Any:
        await directory.start()
        session = app[SESSION_KEY] = aiohttp.ClientSession()
        follower = None
        if mirror_of and mirroring:
            follower = asyncio.create_task(Mirror(directory, mirror_of, session).run())
        yield
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await session.close()
        await directory.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/", index)
    app.router.add_get("/export", export)
    app.router.add_get("/export/stream", export_stream)
    app.router.add_get("/{did}", get_document)
    app.router.add_post("/{did}", post_operation)
    app.router.add_get("/{did}/data", get_data)
    app.router.add_get("/{did}/log", get_log)
    app.router.add_get("/{did}/log/audit", get_audit_log)
    app.router.add_get("/{did}/log/last", get_last)
    return app
