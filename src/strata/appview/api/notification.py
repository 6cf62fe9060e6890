"""`app.bsky.notification.*`: the signed-in account's notifications and what it has seen."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from strata.appview.context import (
    AppContext,
    page,
    page_cursor,
    read_cursor,
    viewer_verifier,
    write,
)
from strata.appview.views import Views
from strata.core.syntax import format_datetime, parse_datetime
from strata.net.errors import invalid_request
from strata.net.server import json_response
from strata.net.xrpc import Call, XrpcRouter
from strata.pds.sequencer import iso_now

NEVER = "0000-01-01T00:00:00.000Z"

NOT_MUTED = (
    "NOT EXISTS (SELECT 1 FROM mute m WHERE m.muter = n.recipient AND m.subject = n.author "
    "AND m.only_reposts = 0 AND m.only_quoteposts = 0) "
    "AND NOT EXISTS (SELECT 1 FROM list_mute lm JOIN list_item li ON li.list_uri = lm.list_uri "
    "WHERE lm.muter = n.recipient AND li.subject = n.author) "
    "AND NOT EXISTS (SELECT 1 FROM thread_mute t WHERE t.muter = n.recipient AND t.root_uri IN ("
    "(SELECT coalesce(p.reply_root, p.uri) FROM post p WHERE p.uri = n.record_uri), "
    "(SELECT coalesce(p.reply_root, p.uri) FROM post p WHERE p.uri = n.reason_subject)))"
)
"""A notification's author is not muted by its recipient (directly or through a list), nor is
the thread it is about (the post's, or the liked or reposted post's, root)."""

FILTERABLE: Final = (
    "follow", "like", "likeViaRepost", "mention", "quote", "reply", "repost", "repostViaRepost",
)  # fmt: skip
"""Preferences that also say whose notifications to include (everyone's, or follows')."""
PLAIN: Final = ("starterpackJoined", "subscribedPost", "unverified", "verified")
CHAT: Final = {"include": "all", "push": True}
"""The `chat` preference is deprecated: the reference answers this, whatever was put."""
PLATFORMS: Final = ("ios", "android", "web")
REGISTER_PUSH: Final = (
    "INSERT INTO push_registration (did, platform, app_id, token, service_did, age_restricted, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (did, platform, app_id, token) "
    "DO UPDATE SET age_restricted = excluded.age_restricted, updated_at = excluded.updated_at"
)
UNREGISTER_PUSH: Final = (
    "DELETE FROM push_registration WHERE did = ? AND platform = ? AND app_id = ? AND token = ?"
)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else True


def _given(stored: dict[str, Any], name: str) -> dict[str, Any]:
    value = stored.get(name)
    return value if isinstance(value, dict) else {}


def complete_preferences(stored: dict[str, Any]) -> dict[str, Any]:
    """`app.bsky.notification.defs#preferences` from what was put, with the reference's
    defaults for what was not (everything listed and pushed, from everyone)."""
    out: dict[str, Any] = {"chat": dict(CHAT)}
    for name in FILTERABLE:
        given = _given(stored, name)
        include = given.get("include")
        out[name] = {
            "include": include if include in ("all", "follows") else "all",
            "list": _flag(given.get("list")),
            "push": _flag(given.get("push")),
        }
    for name in PLAIN:
        given = _given(stored, name)
        out[name] = {"list": _flag(given.get("list")), "push": _flag(given.get("push"))}
    return out


def register(router: XrpcRouter, context: AppContext) -> None:
    db = context.db
    required = viewer_verifier(context, required=True)

    async def seen_at(did: str) -> str | None:
        row = await db.fetchrow("SELECT seen_at FROM seen WHERE did = ?", did)
        return str(row[0]) if row else None

    @router.query("app.bsky.notification.listNotifications", auth=required)
    async def list_notifications(call: Call[str]) -> web.StreamResponse:
        limit = call.params.get("limit", 50)
        before, key = read_cursor(call.params)
        reasons = list(call.params.get("reasons", []))
        where = ""
        if reasons:
            where = " AND n.reason IN ({})".format(", ".join("?" * len(reasons)))
        rows = await db.fetch(
            "SELECT n.record_uri, n.record_cid, n.author, n.reason, n.reason_subject, n.sort_at, "
            "r.json, r.indexed_at FROM notification n JOIN record r ON r.uri = n.record_uri "
            "JOIN actor a ON a.did = n.author "
            f"WHERE n.recipient = ? AND a.status = 'active' AND {NOT_MUTED} "
            f"AND (n.sort_at < ? OR (n.sort_at = ? AND n.record_uri < ?)){where} "
            "ORDER BY n.sort_at DESC, n.record_uri DESC LIMIT ?",
            call.auth, before, before, key, *reasons, limit,
        )  # fmt: skip
        views = context.views(Views, call)
        authors = await views.profiles([r[2] for r in rows], "view")
        rel = await views.relations(authors)
        seen = await seen_at(call.auth) or NEVER
        notifications: list[dict[str, Any]] = []
        for uri, cid, author, reason, subject, sort_at, raw, indexed_at in rows:
            if author not in authors or rel.blocks(author):
                continue
            item: dict[str, Any] = {
                "uri": uri,
                "cid": cid,
                "author": authors[author],
                "reason": reason,
                "record": json.loads(raw),
                "isRead": sort_at <= seen,
                "indexedAt": indexed_at,
                "labels": [],
            }
            if subject:
                item["reasonSubject"] = subject
            notifications.append(item)
        body: dict[str, Any] = {"notifications": notifications, "priority": False}
        if seen != NEVER:
            body["seenAt"] = seen
        cursor = page_cursor(rows[-1][5], rows[-1][0]) if len(rows) == limit else None
        return json_response(page(body, cursor))

    @router.query("app.bsky.notification.getUnreadCount", auth=required)
    async def get_unread_count(call: Call[str]) -> web.StreamResponse:
        seen = await seen_at(call.auth) or NEVER
        row = await db.fetchrow(
            "SELECT count(*) FROM notification n JOIN actor a ON a.did = n.author "
            f"WHERE n.recipient = ? AND n.sort_at > ? AND a.status = 'active' AND {NOT_MUTED}",
            call.auth, seen,
        )  # fmt: skip
        return json_response({"count": int(row[0]) if row else 0})

    @router.procedure("app.bsky.notification.updateSeen", auth=required)
    async def update_seen(call: Call[str]) -> web.StreamResponse:
        try:
            seen = format_datetime(parse_datetime(call.body["seenAt"]))
        except (ValueError, KeyError, TypeError):
            raise invalid_request("seenAt must be a datetime") from None
        await write(
            db,
            "INSERT INTO seen (did, seen_at) VALUES (?, ?) "
            "ON CONFLICT (did) DO UPDATE SET seen_at = excluded.seen_at",
            call.auth, seen,
        )  # fmt: skip
        return web.Response(status=200)

    async def preferences(did: str) -> dict[str, Any]:
        row = await db.fetchrow("SELECT json FROM notification_preferences WHERE did = ?", did)
        return complete_preferences(json.loads(row[0]) if row else {})

    @router.query("app.bsky.notification.getPreferences", auth=required)
    async def get_preferences(call: Call[str]) -> web.StreamResponse:
        return json_response({"preferences": await preferences(call.auth)})

    @router.procedure("app.bsky.notification.putPreferencesV2", auth=required)
    async def put_preferences_v2(call: Call[str]) -> web.StreamResponse:
        # Each preference given replaces the stored one whole; the others stay.
        merged = {**await preferences(call.auth), **call.body}
        stored = complete_preferences(merged)
        await write(
            db,
            "INSERT INTO notification_preferences (did, json, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (did) DO UPDATE SET json = excluded.json, "
            "updated_at = excluded.updated_at",
            call.auth, json.dumps(stored), iso_now(),
        )  # fmt: skip
        return json_response({"preferences": stored})

    def push_target(call: Call[str]) -> tuple[str, str, str, str]:
        """The (account, platform, appId, token) of a push registration addressed to this
        AppView."""
        body = call.body
        if body["serviceDid"] != context.did:
            raise invalid_request("Invalid serviceDid.")
        if body["platform"] not in PLATFORMS:
            raise invalid_request('Unsupported platform: must be "ios", "android", or "web".')
        return call.auth, body["platform"], body["appId"], body["token"]

    @router.procedure("app.bsky.notification.registerPush", auth=required)
    async def register_push(call: Call[str]) -> web.StreamResponse:
        restricted = int(bool(call.body.get("ageRestricted")))
        await write(db, REGISTER_PUSH, *push_target(call), context.did, restricted, iso_now())
        return web.Response(status=200)

    @router.procedure("app.bsky.notification.unregisterPush", auth=required)
    async def unregister_push(call: Call[str]) -> web.StreamResponse:
        await write(db, UNREGISTER_PUSH, *push_target(call))
        return web.Response(status=200)
