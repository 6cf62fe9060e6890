"""`com.atproto.sync.*`: repositories as CAR files, blobs, and the `subscribeRepos` firehose."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from strata.core.car import car_header, car_section, write_car
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.core.mst.proof import covering_proof
from strata.net.errors import XrpcError, invalid_request
from strata.net.firehose import serve_event_stream
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.accounts import Account
from strata.pds.auth import Admin, Credentials
from strata.pds.service import Pds
from strata.pds.writer import repo_not_found

CAR: Final = "application/vnd.ipld.car"


def _hosted(pds: Pds, did: str, caller: Credentials | Admin | None = None) -> Account:
    """The account whose repository is asked for; an inactive one only for itself or the
    operator (so that a migration can check what it imported before activating)."""
    account = pds.accounts.get(did)
    if account is None:
        raise repo_not_found(did)
    own = isinstance(caller, Admin) or (isinstance(caller, Credentials) and caller.did == did)
    if not own:
        if account.takedown_ref is not None:
            raise XrpcError(400, "RepoTakendown", f"Repo has been takendown: {did}")
        if account.deactivated_at is not None:
            raise XrpcError(400, "RepoDeactivated", f"Repo has been deactivated: {did}")
    return account


def register(router: XrpcRouter, pds: Pds) -> None:
    self_or_admin = pds.auth.self_or_admin()

    @router.query("com.atproto.sync.getRepo", auth=self_or_admin)
    async def get_repo(call: Call[None]) -> web.StreamResponse:
        did = call.params["did"]
        _hosted(pds, did, call.auth)
        store = pds.stores.open(did)
        root = store.root()
        if root is None:
            raise repo_not_found(did)
        response = web.StreamResponse(headers={"Content-Type": CAR})
        await response.prepare(call.request)
        chunk = bytearray(car_header([root[0]]))
        for cid_bytes, block in store.blocks_since(call.params.get("since")):
            chunk += car_section(CID(bytes(cid_bytes)), block)
            if len(chunk) > 1 << 16:
                await response.write(bytes(chunk))
                chunk.clear()
        await response.write(bytes(chunk))
        await response.write_eof()
        return response

    @router.query("com.atproto.sync.getRecord", auth=self_or_admin)
    async def get_record(call: Call[None]) -> web.Response:
        did = call.params["did"]
        _hosted(pds, did, call.auth)
        repo = pds.stores.open(did).repo()
        if repo is None:
            raise repo_not_found(did)
        path = f"{call.params['collection']}/{call.params['rkey']}"
        blocks = {repo.commit_cid: repo.store[repo.commit_cid]}
        for cid in covering_proof(repo.tree, path):
            blocks[cid] = repo.store[cid]
        record = repo.tree.get(path)
        if record is None:
            raise XrpcError(404, "RecordNotFound", f"Could not locate record: at://{did}/{path}")
        blocks[record] = repo.store[record]
        return web.Response(body=write_car([repo.commit_cid], blocks.items()), content_type=CAR)

    @router.query("com.atproto.sync.getBlocks", auth=self_or_admin)
    async def get_blocks(call: Call[None]) -> web.Response:
        did = call.params["did"]
        _hosted(pds, did, call.auth)
        try:
            cids = [CID.from_str(c) for c in call.params["cids"]]
        except CoreError as exc:
            raise invalid_request(f"cids must be CIDs: {exc}") from exc
        store = pds.stores.open(did)
        found, missing = store.get_blocks(cids)
        if missing:
            raise XrpcError(
                400, "BlockNotFound", f"Could not find cids: {', '.join(map(str, missing))}"
            )
        root = store.root()
        roots = [root[0]] if root else []
        return web.Response(body=write_car(roots, found.items()), content_type=CAR)

    @router.query("com.atproto.sync.getLatestCommit", auth=self_or_admin)
    async def get_latest_commit(call: Call[None]) -> web.Response:
        did = call.params["did"]
        _hosted(pds, did, call.auth)
        root = pds.stores.open(did).root()
        if root is None:
            raise XrpcError(400, "RepoNotFound", f"Could not find root for DID: {did}")
        return json_response({"cid": str(root[0]), "rev": root[1]})

    @router.query("com.atproto.sync.getRepoStatus")
    async def get_repo_status(call: Call[None]) -> web.Response:
        did = call.params["did"]
        account = pds.accounts.get(did)
        if account is None:
            raise repo_not_found(did)
        out: dict[str, Any] = {"did": did, "active": account.active}
        if account.status is not None:
            out["status"] = account.status
        root = pds.accounts.root(did)
        if root is not None and account.active:
            out["rev"] = root[1]
        return json_response(out)

    @router.query("com.atproto.sync.listRepos")
    async def list_repos(call: Call[None]) -> web.Response:
        limit = call.params.get("limit", 500)
        rows = pds.accounts.list_repos(call.params.get("cursor"), limit)
        repos = []
        for account, cid, rev in rows:
            item: dict[str, Any] = {"did": account.did, "head": cid, "rev": rev}
            item["active"] = account.active
            if account.status is not None:
                item["status"] = account.status
            repos.append(item)
        out: dict[str, Any] = {"repos": repos}
        if len(rows) == limit:
            out["cursor"] = rows[-1][0].did
        return json_response(out)

    @router.query("com.atproto.sync.getBlob", auth=self_or_admin)
    async def get_blob(call: Call[None]) -> web.StreamResponse:
        did, cid = call.params["did"], call.params["cid"]
        _hosted(pds, did, call.auth)
        row = pds.stores.open(did).blob(cid)
        path = pds.blobs.path(did, cid) if row is not None and row.temp_key is None else None
        if row is None or path is None or row.takedown_ref is not None:
            raise XrpcError(400, "BlobNotFound", "Blob not found")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": row.mime_type,
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    @router.query("com.atproto.sync.listBlobs", auth=self_or_admin)
    async def list_blobs(call: Call[None]) -> web.Response:
        did = call.params["did"]
        _hosted(pds, did, call.auth)
        limit = call.params.get("limit", 500)
        cids = pds.stores.open(did).list_blobs(
            call.params.get("since"), limit, call.params.get("cursor")
        )
        out: dict[str, Any] = {"cids": cids}
        if len(cids) == limit:
            out["cursor"] = cids[-1]
        return json_response(out)

    @router.query("com.atproto.sync.subscribeRepos")
    async def subscribe_repos(call: Call[None]) -> web.StreamResponse:
        return await serve_event_stream(
            "pds", pds.sequencer, call.request, call.params.get("cursor")
        )
