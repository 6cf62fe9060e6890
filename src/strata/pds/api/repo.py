"""`com.atproto.repo.*`: reading and writing records, blobs, importing a whole repository."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from strata.core import cbor
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.net.errors import XrpcError, invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.accounts import Account
from strata.pds.auth import ACCESS, Credentials
from strata.pds.blobs import BlobTooLarge
from strata.pds.importer import import_repo, parse_repo
from strata.pds.service import Pds
from strata.pds.writer import (
    UNSET,
    Applied,
    PreparedWrite,
    prepare_delete,
    prepare_record_write,
)

RECORD_JSON_LIMIT = 1_000_000
"""Record writes may carry larger bodies than other methods (the reference's limit)."""


def parse_cid(value: Any, name: str) -> CID:
    try:
        return CID.from_str(str(value))
    except CoreError as exc:
        raise invalid_request(f"{name} must be a CID: {exc}") from exc


def optional_cid(body: dict[str, Any], name: str) -> CID | None:
    value = body.get(name)
    return parse_cid(value, name) if value is not None else None


def resolve_local(pds: Pds, repo: str) -> Account:
    """The local account named by a DID or handle; 400 when there is none."""
    account = pds.accounts.lookup(repo)
    if account is None:
        raise invalid_request(f"Could not find repo: {repo}")
    return account


def readable_repo(pds: Pds, repo: str) -> Account:
    """The local account named by `repo` whose records anyone may read: a deactivated or
    taken-down repository is not found, as with the reference PDS."""
    account = resolve_local(pds, repo)
    if not account.active:
        raise invalid_request(f"Could not find repo: {repo}")
    return account


def _own_repo(pds: Pds, call: Call[Credentials]) -> str:
    account = resolve_local(pds, call.body["repo"])
    if account.did != call.auth.did:
        raise XrpcError(401, "AuthenticationRequired", "Authentication Required")
    return account.did


def _commit_meta(applied: Applied) -> dict[str, str]:
    return {"cid": str(applied.result.cid), "rev": applied.result.commit.rev}


def _record_answer(did: str, write: PreparedWrite, applied: Applied) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uri": f"at://{did}/{write.path}",
        "cid": str(applied.cids[write.path]),
        "commit": _commit_meta(applied),
    }
    if write.validation is not None:
        out["validationStatus"] = write.validation
    return out


def register(router: XrpcRouter, pds: Pds) -> None:
    writer_auth = pds.auth.access()
    deactivated_ok = pds.auth.access(allow_deactivated=True)
    catalog = pds.catalog

    @router.procedure(
        "com.atproto.repo.createRecord", auth=writer_auth, json_limit=RECORD_JSON_LIMIT
    )
    async def create_record(call: Call[Credentials]) -> web.Response:
        did = _own_repo(pds, call)
        pds.rate_limits.charge_writes(call.request, did, ["create"])
        body = call.body
        write = prepare_record_write(
            catalog,
            "create",
            body["collection"],
            body.get("rkey"),
            body["record"],
            body.get("validate"),
        )
        applied = pds.writer.apply(did, [write], optional_cid(body, "swapCommit"))
        return json_response(_record_answer(did, write, applied))

    @router.procedure("com.atproto.repo.putRecord", auth=writer_auth, json_limit=RECORD_JSON_LIMIT)
    async def put_record(call: Call[Credentials]) -> web.Response:
        did = _own_repo(pds, call)
        pds.rate_limits.charge_writes(call.request, did, ["update"])
        body = call.body
        store = pds.stores.open(did)
        exists = store.record_cid(body["collection"], body["rkey"]) is not None
        swap: CID | Any | None = UNSET
        if "swapRecord" in body:
            swap = optional_cid(body, "swapRecord")
        write = prepare_record_write(
            catalog,
            "update" if exists else "create",
            body["collection"],
            body["rkey"],
            body["record"],
            body.get("validate"),
            swap,
        )
        applied = pds.writer.apply(did, [write], optional_cid(body, "swapCommit"))
        return json_response(_record_answer(did, write, applied))

    @router.procedure("com.atproto.repo.deleteRecord", auth=writer_auth)
    async def delete_record(call: Call[Credentials]) -> web.Response:
        did = _own_repo(pds, call)
        pds.rate_limits.charge_writes(call.request, did, ["delete"])
        body = call.body
        swap = optional_cid(body, "swapRecord")
        write = prepare_delete(body["collection"], body["rkey"], swap if swap else UNSET)
        if pds.stores.open(did).record_cid(write.collection, write.rkey) is None:
            return json_response({})  # nothing to delete: a no-op, as in the reference
        applied = pds.writer.apply(did, [write], optional_cid(body, "swapCommit"))
        return json_response({"commit": _commit_meta(applied)})

    @router.procedure(
        "com.atproto.repo.applyWrites", auth=writer_auth, json_limit=RECORD_JSON_LIMIT
    )
    async def apply_writes(call: Call[Credentials]) -> web.Response:
        did = _own_repo(pds, call)
        body = call.body
        validate = body.get("validate")
        prepared: list[PreparedWrite] = []
        for item in body["writes"]:
            kind = item.get("$type", "")
            if kind.endswith("#create"):
                prepared.append(
                    prepare_record_write(
                        catalog,
                        "create",
                        item["collection"],
                        item.get("rkey"),
                        item["value"],
                        validate,
                    )
                )
            elif kind.endswith("#update"):
                prepared.append(
                    prepare_record_write(
                        catalog, "update", item["collection"], item["rkey"], item["value"], validate
                    )
                )
            else:
                prepared.append(prepare_delete(item["collection"], item["rkey"]))
        if len(prepared) > 200:
            raise invalid_request("Too many writes. Max: 200")
        pds.rate_limits.charge_writes(call.request, did, [w.action for w in prepared])
        applied = pds.writer.apply(did, prepared, optional_cid(body, "swapCommit"))
        results: list[dict[str, Any]] = []
        for write in prepared:
            if write.action == "delete":
                results.append({"$type": "com.atproto.repo.applyWrites#deleteResult"})
                continue
            result = {
                "$type": f"com.atproto.repo.applyWrites#{write.action}Result",
                "uri": f"at://{did}/{write.path}",
                "cid": str(applied.cids[write.path]),
            }
            if write.validation is not None:
                result["validationStatus"] = write.validation
            results.append(result)
        return json_response({"commit": _commit_meta(applied), "results": results})

    @router.query("com.atproto.repo.getRecord")
    async def get_record(call: Call[None]) -> web.Response:
        account = resolve_local(pds, call.params["repo"])
        collection, rkey = call.params["collection"], call.params["rkey"]
        uri = f"at://{account.did}/{collection}/{rkey}"
        store = pds.stores.open(account.did)
        cid = store.record_cid(collection, rkey)
        wanted = call.params.get("cid")
        if cid is None or (wanted is not None and wanted != cid) or not account.active:
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        value = cbor.decode_to_json(store.blocks[CID.from_str(cid)])
        return json_response({"uri": uri, "cid": cid, "value": value})

    @router.query("com.atproto.repo.listRecords")
    async def list_records(call: Call[None]) -> web.Response:
        account = readable_repo(pds, call.params["repo"])
        collection = call.params["collection"]
        limit = call.params.get("limit", 50)
        store = pds.stores.open(account.did)
        rows = store.list_records(
            collection, limit, call.params.get("cursor"), call.params.get("reverse", False)
        )
        records = [
            {
                "uri": f"at://{account.did}/{collection}/{rkey}",
                "cid": cid,
                "value": cbor.decode_to_json(store.blocks[CID.from_str(cid)]),
            }
            for rkey, cid in rows
        ]
        out: dict[str, Any] = {"records": records}
        if len(rows) == limit:
            out["cursor"] = rows[-1][0]
        return json_response(out)

    @router.query("com.atproto.repo.describeRepo")
    async def describe_repo(call: Call[None]) -> web.Response:
        account = readable_repo(pds, call.params["repo"])
        doc = await pds.did_document_json(account.did)
        handle = account.handle or "handle.invalid"
        return json_response(
            {
                "handle": handle,
                "did": account.did,
                "didDoc": doc or {},
                "collections": pds.stores.open(account.did).collections(),
                "handleIsCorrect": doc is not None
                and f"at://{handle}" in doc.get("alsoKnownAs", []),
            }
        )

    # A service acting for the account (a video service) may upload with a service token.
    upload_access = pds.auth.access_or_service(allow_deactivated=True)

    @router.procedure("com.atproto.repo.uploadBlob", auth=upload_access, raw_input=True)
    async def upload_blob(call: Call[Credentials]) -> web.Response:
        declared = call.request.headers.get("Content-Type")
        length = call.request.content_length
        limit = pds.config.blob_upload_limit
        if length is not None and length > limit:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large")
        # An upload fills the disk as a write does: it costs what a record's creation costs.
        pds.rate_limits.charge_writes(call.request, call.auth.did, ["create"])

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in call.request.content.iter_chunked(1 << 16):
                yield chunk

        try:
            upload = await pds.blobs.receive(call.auth.did, chunks(), declared, limit)
        except BlobTooLarge as exc:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large") from exc
        store = pds.stores.open(call.auth.did)
        row = store.add_blob(str(upload.cid), upload.mime_type, upload.size, upload.temp_key)
        if row.temp_key != upload.temp_key:
            pds.blobs.discard_upload(upload.temp_key)
        elif store.blob_referenced(row.cid):
            pds.blobs.make_permanent(call.auth.did, row.cid, upload.temp_key)
            with store.transaction() as conn:
                store.mark_permanent(conn, row.cid)
        return json_response(
            {
                "blob": {
                    "$type": "blob",
                    "ref": {"$link": str(upload.cid)},
                    "mimeType": row.mime_type,
                    "size": row.size,
                }
            }
        )

    @router.query("com.atproto.repo.listMissingBlobs", auth=deactivated_ok)
    async def list_missing_blobs(call: Call[Credentials]) -> web.Response:
        limit = call.params.get("limit", 500)
        rows = pds.stores.open(call.auth.did).missing_blobs(limit, call.params.get("cursor"))
        out: dict[str, Any] = {
            "blobs": [
                {"cid": cid, "recordUri": f"at://{call.auth.did}/{path}"} for cid, path in rows
            ]
        }
        if len(rows) == limit:
            out["cursor"] = rows[-1][0]
        return json_response(out)

    # As the reference: a full session (not an app password), which may be deactivated (a
    # migration imports before it activates).
    full_access = pds.auth.access(scopes=(ACCESS,), allow_deactivated=True)

    @router.procedure("com.atproto.repo.importRepo", auth=full_access, raw_input=True)
    async def import_repo_handler(call: Call[Credentials]) -> web.Response:
        if call.request.content_type != "application/vnd.ipld.car":
            raise invalid_request(
                f"Wrong request encoding (Content-Type): {call.request.content_type}"
            )
        data = await call.request.read()
        parsed = await asyncio.to_thread(parse_repo, call.auth.did, data)
        import_repo(pds, call.auth.did, parsed)
        return web.Response(status=200)
