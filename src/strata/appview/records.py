"""Writing one record into the index, and taking it out again.

Each indexed collection has a table of the columns the views query by; the record itself is kept
as JSON in `record` for hydration. Notifications are written with the record that causes them
and removed with it. Both functions add to `changed` the keys whose views they changed (the
record's URI, the URIs and DIDs whose counts moved), for the hot-path cache to drop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from strata.core.syntax import format_datetime, parse_datetime
from strata.database import Executor

INDEXED: Final = frozenset(
    {
        "app.bsky.actor.profile",
        "app.bsky.feed.post",
        "app.bsky.feed.like",
        "app.bsky.feed.repost",
        "app.bsky.feed.generator",
        "app.bsky.feed.threadgate",
        "app.bsky.graph.follow",
        "app.bsky.graph.block",
        "app.bsky.graph.list",
        "app.bsky.graph.listitem",
        "app.bsky.graph.listblock",
        "app.bsky.graph.starterpack",
        "app.bsky.feed.postgate",
        "app.bsky.labeler.service",
    }
)
"""Collections the AppView indexes; records of other collections are ignored."""

TABLES: Final = {
    "app.bsky.actor.profile": "profile",
    "app.bsky.feed.post": "post",
    "app.bsky.feed.like": "likes",
    "app.bsky.feed.repost": "repost",
    "app.bsky.feed.generator": "feed_generator",
    "app.bsky.feed.threadgate": "threadgate",
    "app.bsky.graph.follow": "follow",
    "app.bsky.graph.block": "block",
    "app.bsky.graph.list": "list",
    "app.bsky.graph.listitem": "list_item",
    "app.bsky.graph.listblock": "list_block",
    "app.bsky.graph.starterpack": "starter_pack",
    "app.bsky.feed.postgate": "postgate",
    "app.bsky.labeler.service": "labeler",
}


_INDEX_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def sort_at(record: dict[str, Any], indexed_at: str) -> str:
    """The earlier of the record's `createdAt` and `indexed_at`, in the index's time format."""
    created = record.get("createdAt")
    if not isinstance(created, str):
        return indexed_at
    if not _INDEX_TIME.fullmatch(created):
        # Most clients write the index's own form; any other valid one is converted.
        try:
            created = format_datetime(parse_datetime(created))
        except ValueError:
            return indexed_at
    return min(created, indexed_at)


def did_of(uri: str) -> str:
    """The repository DID of an at:// URI (empty for anything else)."""
    return uri[5:].partition("/")[0] if uri.startswith("at://") else ""


def strong_ref(value: Any) -> tuple[str, str] | None:
    """The (uri, cid) of a strong reference; cid is empty when it is missing."""
    if isinstance(value, dict) and isinstance(value.get("uri"), str):
        cid = value.get("cid")
        return value["uri"], cid if isinstance(cid, str) else ""
    return None


def ref_uri(value: Any) -> str | None:
    """The URI of a strong reference, if it is one."""
    ref = strong_ref(value)
    return ref[0] if ref else None


def blob_cid(value: Any) -> str | None:
    """The CID of a blob, in its current (`ref`) or legacy (`cid`) form."""
    if isinstance(value, dict):
        ref = value.get("ref")
        if isinstance(ref, dict) and isinstance(ref.get("$link"), str):
            return str(ref["$link"])
        if isinstance(value.get("cid"), str):
            return str(value["cid"])
    return None


def quoted_uri(embed: Any) -> str | None:
    """The record a post's embed quotes (record or recordWithMedia), if any."""
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record":
        return ref_uri(embed.get("record"))
    if kind == "app.bsky.embed.recordWithMedia":
        inner = embed.get("record")
        return ref_uri(inner.get("record")) if isinstance(inner, dict) else None
    return None


def media_kind(embed: Any) -> str | None:
    """`images` or `video` for a post that carries them (alone or beside a quote)."""
    if not isinstance(embed, dict):
        return None
    if embed.get("$type") == "app.bsky.embed.recordWithMedia":
        embed = embed.get("media")
        if not isinstance(embed, dict):
            return None
    kind = embed.get("$type")
    if kind == "app.bsky.embed.images":
        return "images"
    return "video" if kind == "app.bsky.embed.video" else None


def mentioned_dids(record: dict[str, Any]) -> set[str]:
    """DIDs a post mentions through its facets."""
    found: set[str] = set()
    facets = record.get("facets")
    for facet in facets if isinstance(facets, list) else ():
        features = facet.get("features") if isinstance(facet, dict) else None
        for feature in features if isinstance(features, list) else ():
            if (
                isinstance(feature, dict)
                and feature.get("$type") == "app.bsky.richtext.facet#mention"
                and isinstance(feature.get("did"), str)
            ):
                found.add(feature["did"])
    return found


async def index_record(
    tx: Executor,
    uri: str,
    cid: str,
    collection: str,
    record: dict[str, Any],
    indexed_at: str,
    changed: set[str],
) -> None:
    """Insert one validated record of an indexed collection, replacing what was indexed under
    its URI before (an update, or a create replayed by a relay)."""
    did, rkey = did_of(uri), uri.rsplit("/", 1)[-1]
    if collection in ("app.bsky.actor.profile", "app.bsky.labeler.service") and rkey != "self":
        return
    changed.update((uri, did))
    row = (uri, cid, did, collection, rkey, json.dumps(record, separators=(",", ":")), indexed_at)
    insert = (
        "INSERT INTO record (uri, cid, did, collection, rkey, json, indexed_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    if not await tx.fetch(f"{insert} ON CONFLICT (uri) DO NOTHING RETURNING uri", *row):
        await delete_record(tx, uri, collection, changed)
        await tx.execute(insert, *row)
    at = sort_at(record, indexed_at)

    async def notify(recipient: str, reason: str, subject: str | None) -> None:
        if recipient and recipient != did:
            await tx.execute(
                "INSERT INTO notification (recipient, author, record_uri, record_cid, reason, "
                "reason_subject, sort_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                recipient, did, uri, cid, reason, subject, at,
            )  # fmt: skip

    if collection == "app.bsky.feed.post":
        await _index_post(tx, uri, cid, did, record, indexed_at, at, notify, changed)
    elif collection == "app.bsky.actor.profile":
        pinned = strong_ref(record.get("pinnedPost"))
        await tx.execute(
            "INSERT INTO profile (did, cid, display_name, description, avatar_cid, banner_cid, "
            "pinned_post, created_at, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            did, cid, _text(record, "displayName"), _text(record, "description"),
            blob_cid(record.get("avatar")), blob_cid(record.get("banner")),
            pinned[0] if pinned else None, _text(record, "createdAt"), indexed_at,
        )  # fmt: skip
    elif collection in ("app.bsky.feed.like", "app.bsky.feed.repost"):
        subject = strong_ref(record.get("subject"))
        if subject is None:
            return
        table = TABLES[collection]
        changed.add(subject[0])
        await tx.execute(
            f"INSERT INTO {table} (uri, cid, creator, subject, subject_cid, sort_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            uri, cid, did, subject[0], subject[1], at,
        )  # fmt: skip
        reason = "like" if collection == "app.bsky.feed.like" else "repost"
        await notify(did_of(subject[0]), reason, subject[0])
        if collection == "app.bsky.feed.repost":
            await tx.execute(
                "INSERT INTO feed_item (uri, cid, type, post_uri, originator, is_reply, sort_at) "
                "VALUES (?, ?, 'repost', ?, ?, 0, ?)",
                uri, cid, subject[0], did, at,
            )  # fmt: skip
    elif collection in ("app.bsky.graph.follow", "app.bsky.graph.block"):
        subject_did = record.get("subject")
        if not isinstance(subject_did, str):
            return
        table = TABLES[collection]
        changed.add(subject_did)
        await tx.execute(
            f"INSERT INTO {table} (uri, cid, creator, subject, sort_at) VALUES (?, ?, ?, ?, ?)",
            uri, cid, did, subject_did, at,
        )  # fmt: skip
        if collection == "app.bsky.graph.follow":
            await notify(subject_did, "follow", None)
    elif collection == "app.bsky.graph.list":
        await tx.execute(
            "INSERT INTO list (uri, cid, creator, name, purpose, sort_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            uri, cid, did, _text(record, "name") or "", _text(record, "purpose") or "", at,
        )  # fmt: skip
    elif collection == "app.bsky.graph.listitem":
        changed.add(_text(record, "list") or "")
        await tx.execute(
            "INSERT INTO list_item (uri, cid, creator, list_uri, subject, sort_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            uri, cid, did, _text(record, "list") or "", _text(record, "subject") or "", at,
        )  # fmt: skip
    elif collection == "app.bsky.feed.generator":
        await tx.execute(
            "INSERT INTO feed_generator (uri, cid, creator, feed_did, display_name, sort_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            uri, cid, did, _text(record, "did") or "", _text(record, "displayName") or "", at,
        )  # fmt: skip
    elif collection == "app.bsky.graph.listblock":
        await tx.execute(
            "INSERT INTO list_block (uri, cid, creator, subject, sort_at) VALUES (?, ?, ?, ?, ?)",
            uri, cid, did, _text(record, "subject") or "", at,
        )  # fmt: skip
    elif collection == "app.bsky.graph.starterpack":
        await tx.execute(
            "INSERT INTO starter_pack (uri, cid, creator, list_uri, sort_at) "
            "VALUES (?, ?, ?, ?, ?)",
            uri, cid, did, _text(record, "list") or "", at,
        )  # fmt: skip
    elif collection == "app.bsky.feed.postgate":
        changed.add(_text(record, "post") or "")
        await tx.execute(
            "INSERT INTO postgate (uri, cid, creator, post_uri) VALUES (?, ?, ?, ?)",
            uri, cid, did, _text(record, "post") or "",
        )  # fmt: skip
    elif collection == "app.bsky.labeler.service":
        await tx.execute(
            "INSERT INTO labeler (uri, cid, creator, sort_at) VALUES (?, ?, ?, ?)",
            uri, cid, did, at,
        )  # fmt: skip
    elif collection == "app.bsky.feed.threadgate":
        changed.add(_text(record, "post") or "")
        await tx.execute(
            "INSERT INTO threadgate (uri, cid, creator, post_uri) VALUES (?, ?, ?, ?)",
            uri, cid, did, _text(record, "post") or "",
        )  # fmt: skip


def _text(record: dict[str, Any], field: str) -> str | None:
    value = record.get(field)
    return value if isinstance(value, str) else None


async def _index_post(
    tx: Executor,
    uri: str,
    cid: str,
    did: str,
    record: dict[str, Any],
    indexed_at: str,
    at: str,
    notify: Callable[[str, str, str | None], Awaitable[None]],
    changed: set[str],
) -> None:
    reply = record.get("reply")
    root = strong_ref(reply.get("root")) if isinstance(reply, dict) else None
    parent = strong_ref(reply.get("parent")) if isinstance(reply, dict) else None
    quote = quoted_uri(record.get("embed"))
    changed.update(u for u in (parent[0] if parent else None, quote) if u)
    langs = record.get("langs")
    await tx.execute(
        "INSERT INTO post (uri, cid, creator, text, reply_root, reply_parent, quote_uri, media, "
        "langs, created_at, indexed_at, sort_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        uri, cid, did, _text(record, "text") or "", root[0] if root else None,
        parent[0] if parent else None, quote, media_kind(record.get("embed")),
        ",".join(x for x in langs if isinstance(x, str)) if isinstance(langs, list) else "",
        _text(record, "createdAt") or indexed_at, indexed_at, at,
    )  # fmt: skip
    await tx.execute(
        "INSERT INTO feed_item (uri, cid, type, post_uri, originator, is_reply, sort_at) "
        "VALUES (?, ?, 'post', ?, ?, ?, ?)",
        uri, cid, uri, did, 1 if parent else 0, at,
    )  # fmt: skip
    notified: set[str] = set()
    if parent:
        recipient = did_of(parent[0])
        await notify(recipient, "reply", parent[0])
        notified.add(recipient)
    if quote:
        recipient = did_of(quote)
        if recipient not in notified:
            await notify(recipient, "quote", quote)
            notified.add(recipient)
    for mentioned in mentioned_dids(record) - notified:
        await notify(mentioned, "mention", None)


RELATED: Final = {
    "post": "reply_parent, quote_uri",
    "likes": "subject",
    "repost": "subject",
    "follow": "subject",
    "threadgate": "post_uri",
    "postgate": "post_uri",
    "list_item": "list_uri",
}
"""Per table, the columns naming the records and accounts whose views a row counts in."""


async def delete_record(tx: Executor, uri: str, collection: str, changed: set[str]) -> None:
    """Remove a record and everything indexed from it (a no-op for an unknown URI)."""
    table = TABLES.get(collection)
    if table is None:
        return
    did = did_of(uri)
    changed.update((uri, did))
    await tx.execute("DELETE FROM record WHERE uri = ?", uri)
    if table == "profile":
        await tx.execute("DELETE FROM profile WHERE did = ?", did)
    elif table in RELATED:
        returning = RELATED[table]
        for row in await tx.fetch(f"DELETE FROM {table} WHERE uri = ? RETURNING {returning}", uri):
            changed.update(key for key in row if key)
    else:
        await tx.execute(f"DELETE FROM {table} WHERE uri = ?", uri)
    if table in ("post", "repost"):
        await tx.execute("DELETE FROM feed_item WHERE uri = ?", uri)
    await tx.execute("DELETE FROM notification WHERE record_uri = ?", uri)
