"""`com.atproto.repo.getRecord` from the index, as the reference AppView serves it: the official
PDS reads a feed's generator record there (to learn the generator's DID) before `getFeed`."""

from __future__ import annotations

import json

from aiohttp import web

from strata.appview.context import AppContext
from strata.net.errors import XrpcError
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db

    @router.query("com.atproto.repo.getRecord")
    async def get_record(call: Call[None]) -> web.StreamResponse:
        repo, collection, rkey = (call.params[k] for k in ("repo", "collection", "rkey"))
        column = "did" if repo.startswith("did:") else "handle"
        actor = await db.fetchrow(
            f"SELECT did FROM actor WHERE {column} = ? AND status = 'active'",
            repo if column == "did" else repo.lower(),
        )
        uri = f"at://{actor[0] if actor else repo}/{collection}/{rkey}"
        row = await db.fetchrow("SELECT cid, json FROM record WHERE uri = ?", uri)
        wanted = call.params.get("cid")
        if actor is None or row is None or (wanted is not None and wanted != row[0]):
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return json_response({"uri": uri, "cid": row[0], "value": json.loads(row[1])})
