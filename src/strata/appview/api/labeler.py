"""`app.bsky.labeler.getServices`: the labelers accounts publish (`app.bsky.labeler.service`)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from strata.appview.context import AppContext, viewer_verifier
from strata.appview.views import Views
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter

DETAILS = ("reasonTypes", "subjectTypes", "subjectCollections")


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    optional = viewer_verifier(context)

    @router.query("app.bsky.labeler.getServices", auth=optional)
    async def get_services(call: Call[str | None]) -> web.StreamResponse:
        dids = list(dict.fromkeys(call.params["dids"]))
        detailed = call.params.get("detailed", False)
        rows = await db.fetch(
            "SELECT b.uri, r.cid, b.creator, r.json, r.indexed_at FROM labeler b "
            "JOIN record r ON r.uri = b.uri WHERE b.creator = ANY(?)",
            dids,
        )
        views = context.views(Views, call)
        creators = await views.profiles([r[2] for r in rows], "view")
        present = [r for r in rows if r[2] in creators]
        counts, liked = await views.record_state([r[0] for r in present])
        found: dict[str, dict[str, Any]] = {}
        for uri, cid, creator, raw, indexed_at in present:
            record = orjson.loads(raw)
            view: dict[str, Any] = {
                "$type": "app.bsky.labeler.defs#labelerView" + ("Detailed" if detailed else ""),
                "uri": uri,
                "cid": cid,
                "creator": creators[creator],
                "likeCount": counts[uri][0],
                "labels": [],
                "indexedAt": indexed_at,
            }
            if detailed:
                view["policies"] = record.get("policies") or {"labelValues": []}
                view.update({k: record[k] for k in DETAILS if k in record})
            if call.auth is not None:
                view["viewer"] = {k: v for k, v in liked.get(uri, {}).items() if k == "like"}
            found[creator] = view
        return json_response({"views": [found[d] for d in dids if d in found]})
