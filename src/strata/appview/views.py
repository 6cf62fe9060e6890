"""Hydration: index rows into the view objects the app.bsky lexicons define.

Every function takes many subjects at once and answers with a few queries, whatever the count, so
a page of 50 posts costs the same handful of round trips on SQLite and on Postgres. Viewer state
(likes, reposts, follows, blocks) is filled in when a viewer is known.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.appview.records import blob_cid, did_of, quoted_uri
from strata.database import Database, placeholders


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass
class Relations:
    """How a viewer stands to a set of accounts."""

    blocking: dict[str, str] = field(default_factory=dict)
    blocked_by: set[str] = field(default_factory=set)
    following: dict[str, str] = field(default_factory=dict)
    followed_by: dict[str, str] = field(default_factory=dict)

    def blocks(self, did: str) -> bool:
        """Whether either side blocks the other."""
        return did in self.blocking or did in self.blocked_by


class Views:
    """Builds views from the index for one request."""

    def __init__(self, db: Database, viewer: str | None) -> None:
        self.db = db
        self.viewer = viewer
        self._relations = Relations()
        self._related: set[str] = set()
        """Accounts whose relation to the viewer is already in `_relations`."""

    async def _rows(self, sql: str, values: Sequence[str], *before: Any) -> list[Any]:
        """`sql` with `{in}` replaced by a placeholder list, run over `values` in chunks."""
        rows: list[Any] = []
        unique = list(dict.fromkeys(values))
        for chunk in _chunks(unique):
            rows.extend(
                await self.db.fetch(sql.format(IN=placeholders(len(chunk))), *before, *chunk)
            )
        return rows

    # Accounts

    async def relations(self, dids: Iterable[str]) -> Relations:
        """How the viewer stands to `dids` (and to every account asked about before in this
        request: each is looked up once)."""
        found = self._relations
        others = [d for d in dict.fromkeys(dids) if d != self.viewer and d not in self._related]
        if self.viewer is None or not others:
            return found
        self._related.update(others)
        v = self.viewer
        for subject, uri in await self._rows(
            "SELECT subject, uri FROM block WHERE creator = ? AND subject IN ({IN})", others, v
        ):
            found.blocking[subject] = uri
        for (creator,) in await self._rows(
            "SELECT creator FROM block WHERE subject = ? AND creator IN ({IN})", others, v
        ):
            found.blocked_by.add(creator)
        for subject, uri in await self._rows(
            "SELECT subject, uri FROM follow WHERE creator = ? AND subject IN ({IN})", others, v
        ):
            found.following[subject] = uri
        for creator, uri in await self._rows(
            "SELECT creator, uri FROM follow WHERE subject = ? AND creator IN ({IN})", others, v
        ):
            found.followed_by[creator] = uri
        return found

    async def actors(self, dids: Sequence[str]) -> dict[str, tuple[str, str | None, str]]:
        """did -> (handle, pds, status) for indexed accounts."""
        rows = await self._rows(
            "SELECT did, handle, pds, status FROM actor WHERE did IN ({IN})", dids
        )
        return {r[0]: (r[1] or "handle.invalid", r[2], r[3]) for r in rows}

    async def profiles(
        self, dids: Sequence[str], level: str = "basic"
    ) -> dict[str, dict[str, Any]]:
        """Views of active accounts: `basic`, `view` or `detailed` (profileViewDetailed)."""
        actors = await self.actors(dids)
        live = [d for d, a in actors.items() if a[2] == "active"]
        profiles = {
            r[0]: r
            for r in await self._rows(
                "SELECT did, display_name, description, avatar_cid, banner_cid, pinned_post, "
                "created_at, indexed_at, cid FROM profile WHERE did IN ({IN})",
                live,
            )
        }
        rel = await self.relations(live)
        counts: dict[str, dict[str, int]] = {d: {} for d in live}
        pinned: dict[str, str] = {}
        if level == "detailed" and live:
            pinned = dict(
                await self._rows(
                    "SELECT uri, cid FROM post WHERE uri IN ({IN})",
                    [row[5] for row in profiles.values() if row[5]],
                )
            )
            for name, sql in (
                ("followers", "SELECT subject, count(*) FROM follow WHERE subject IN ({IN}) "
                 "GROUP BY subject"),
                ("follows", "SELECT creator, count(*) FROM follow WHERE creator IN ({IN}) "
                 "GROUP BY creator"),
                ("posts", "SELECT creator, count(*) FROM post WHERE creator IN ({IN}) "
                 "GROUP BY creator"),
                ("feedgens", "SELECT creator, count(*) FROM feed_generator WHERE creator IN ({IN}) "
                 "GROUP BY creator"),
                ("lists", "SELECT creator, count(*) FROM list WHERE creator IN ({IN}) "
                 "GROUP BY creator"),
            ):  # fmt: skip
                for did, count in await self._rows(sql, live):
                    counts[did][name] = int(count)
        views: dict[str, dict[str, Any]] = {}
        for did in live:
            handle, pds, _status = actors[did]
            view: dict[str, Any] = {"did": did, "handle": handle}
            row = profiles.get(did)
            if row is not None:
                if row[1]:
                    view["displayName"] = row[1]
                if row[3] and pds:
                    view["avatar"] = blob_url(pds, did, row[3])
                if row[6]:
                    view["createdAt"] = row[6]
                if level != "basic":
                    if row[2]:
                        view["description"] = row[2]
                    view["indexedAt"] = row[7]
                if level == "detailed":
                    if row[4] and pds:
                        view["banner"] = blob_url(pds, did, row[4])
                    if row[5] in pinned:
                        view["pinnedPost"] = {"uri": row[5], "cid": pinned[row[5]]}
            if level == "detailed":
                c = counts[did]
                view["followersCount"] = c.get("followers", 0)
                view["followsCount"] = c.get("follows", 0)
                view["postsCount"] = c.get("posts", 0)
                view["associated"] = {
                    "lists": c.get("lists", 0),
                    "feedgens": c.get("feedgens", 0),
                    "starterPacks": 0,
                    "labeler": False,
                }
            view["labels"] = []
            if self.viewer is not None:
                view["viewer"] = self._actor_viewer(did, rel)
            views[did] = view
        return views

    def _actor_viewer(self, did: str, rel: Relations) -> dict[str, Any]:
        state: dict[str, Any] = {"muted": False, "blockedBy": did in rel.blocked_by}
        if did in rel.blocking:
            state["blocking"] = rel.blocking[did]
        if not rel.blocks(did):
            if did in rel.following:
                state["following"] = rel.following[did]
            if did in rel.followed_by:
                state["followedBy"] = rel.followed_by[did]
        return state

    # Posts

    async def posts(self, uris: Sequence[str], depth: int = 1) -> dict[str, dict[str, Any]]:
        """postViews of posts by active accounts; embeds are resolved `depth` levels deep."""
        rows = await self._rows(
            "SELECT r.uri, r.cid, r.did, r.json, p.indexed_at FROM post p "
            "JOIN record r ON r.uri = p.uri WHERE p.uri IN ({IN})",
            uris,
        )
        records = {r[0]: (r[1], r[2], json.loads(r[3]), r[4]) for r in rows}
        authors = await self.profiles([r[1] for r in records.values()])
        present = [u for u, r in records.items() if r[1] in authors]
        counts = await self._post_counts(present)
        viewer_state = await self._post_viewer(present)
        gated = {
            r[0]
            for r in await self._rows(
                "SELECT post_uri FROM threadgate WHERE post_uri IN ({IN})", present
            )
        }
        embeds: dict[str, dict[str, Any]] = {}
        if depth > 0:
            embeds = await self._embeds({u: records[u] for u in present}, depth)
        views: dict[str, dict[str, Any]] = {}
        for uri in present:
            cid, did, record, indexed_at = records[uri]
            c = counts.get(uri, {})
            view: dict[str, Any] = {
                "uri": uri,
                "cid": cid,
                "author": authors[did],
                "record": record,
                "replyCount": c.get("reply", 0),
                "repostCount": c.get("repost", 0),
                "likeCount": c.get("like", 0),
                "quoteCount": c.get("quote", 0),
                "indexedAt": indexed_at,
                "labels": [],
            }
            if uri in embeds:
                view["embed"] = embeds[uri]
            if self.viewer is not None:
                state: dict[str, Any] = {"threadMuted": False, "embeddingDisabled": False}
                state.update(viewer_state.get(uri, {}))
                if uri in gated:
                    state["replyDisabled"] = did != self.viewer
                view["viewer"] = state
            views[uri] = view
        return views

    async def _post_counts(self, uris: list[str]) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for name, sql in (
            ("like", "SELECT subject, count(*) FROM likes WHERE subject IN ({IN}) "
             "GROUP BY subject"),
            ("repost", "SELECT subject, count(*) FROM repost WHERE subject IN ({IN}) "
             "GROUP BY subject"),
            ("reply", "SELECT reply_parent, count(*) FROM post WHERE reply_parent IN ({IN}) "
             "GROUP BY reply_parent"),
            ("quote", "SELECT quote_uri, count(*) FROM post WHERE quote_uri IN ({IN}) "
             "GROUP BY quote_uri"),
        ):  # fmt: skip
            for subject, count in await self._rows(sql, uris):
                counts.setdefault(subject, {})[name] = int(count)
        return counts

    async def _post_viewer(self, uris: list[str]) -> dict[str, dict[str, Any]]:
        state: dict[str, dict[str, Any]] = {}
        if self.viewer is None:
            return state
        for kind, table in (("like", "likes"), ("repost", "repost")):
            for subject, uri in await self._rows(
                f"SELECT subject, uri FROM {table} WHERE creator = ? AND subject IN ({{IN}})",
                uris,
                self.viewer,
            ):
                state.setdefault(subject, {})[kind] = uri
        return state

    async def _embeds(
        self, records: dict[str, tuple[str, str, dict[str, Any], str]], depth: int
    ) -> dict[str, dict[str, Any]]:
        quoted: dict[str, str] = {}
        for uri, (_cid, _did, record, _at) in records.items():
            target = quoted_uri(record.get("embed"))
            if target:
                quoted[uri] = target
        targets = list(dict.fromkeys(quoted.values()))
        post_targets = [t for t in targets if "/app.bsky.feed.post/" in t]
        feed_targets = [t for t in targets if "/app.bsky.feed.generator/" in t]
        rel = await self.relations(did_of(t) for t in targets)
        quoted_posts = await self.posts(post_targets, depth - 1) if post_targets else {}
        quoted_feeds = await self.generators(feed_targets) if feed_targets else {}
        actors = await self.actors([r[1] for r in records.values()])
        views: dict[str, dict[str, Any]] = {}
        for uri, (_cid, did, record, _at) in records.items():
            embed = record.get("embed")
            if not isinstance(embed, dict):
                continue
            pds = actors[did][1] if did in actors else None
            target = quoted.get(uri)
            inner = None
            if target is not None:
                inner = self._record_embed(target, quoted_posts, quoted_feeds, rel)
            view = embed_view(embed, did, pds, inner)
            if view is not None:
                views[uri] = view
        return views

    def _record_embed(
        self,
        target: str,
        posts: dict[str, dict[str, Any]],
        feeds: dict[str, dict[str, Any]],
        rel: Relations,
    ) -> dict[str, Any]:
        if target in feeds:
            return {"$type": "app.bsky.feed.defs#generatorView", **feeds[target]}
        author = did_of(target)
        if rel.blocks(author):
            return {
                "$type": "app.bsky.embed.record#viewBlocked",
                "uri": target,
                "blocked": True,
                "author": _blocked_author(author, rel),
            }
        post = posts.get(target)
        if post is None:
            return {"$type": "app.bsky.embed.record#viewNotFound", "uri": target, "notFound": True}
        view: dict[str, Any] = {
            "$type": "app.bsky.embed.record#viewRecord",
            "uri": post["uri"],
            "cid": post["cid"],
            "author": post["author"],
            "value": post["record"],
            "labels": [],
            "likeCount": post["likeCount"],
            "replyCount": post["replyCount"],
            "repostCount": post["repostCount"],
            "quoteCount": post["quoteCount"],
            "indexedAt": post["indexedAt"],
        }
        if "embed" in post:
            view["embeds"] = [post["embed"]]
        return view

    # Feed generators

    async def generators(self, uris: Sequence[str]) -> dict[str, dict[str, Any]]:
        """generatorViews of indexed feed generator records."""
        rows = await self._rows(
            "SELECT r.uri, r.cid, r.did, r.json, r.indexed_at, g.feed_did FROM feed_generator g "
            "JOIN record r ON r.uri = g.uri WHERE g.uri IN ({IN})",
            uris,
        )
        creators = await self.profiles([r[2] for r in rows], "view")
        likes = dict(
            await self._rows(
                "SELECT subject, count(*) FROM likes WHERE subject IN ({IN}) GROUP BY subject",
                [r[0] for r in rows],
            )
        )
        liked = await self._post_viewer([r[0] for r in rows])
        actors = await self.actors([r[2] for r in rows])
        views: dict[str, dict[str, Any]] = {}
        for uri, cid, did, raw, indexed_at, feed_did in rows:
            if did not in creators:
                continue
            record = json.loads(raw)
            view: dict[str, Any] = {
                "uri": uri,
                "cid": cid,
                "did": feed_did,
                "creator": creators[did],
                "displayName": record.get("displayName", ""),
                "likeCount": int(likes.get(uri, 0)),
                "labels": [],
                "indexedAt": indexed_at,
            }
            for key in ("description", "descriptionFacets", "acceptsInteractions", "contentMode"):
                if key in record:
                    view[key] = record[key]
            avatar = blob_cid(record.get("avatar"))
            pds = actors.get(did, ("", None, ""))[1]
            if avatar and pds:
                view["avatar"] = blob_url(pds, did, avatar)
            if self.viewer is not None:
                view["viewer"] = {k: v for k, v in liked.get(uri, {}).items() if k == "like"}
            views[uri] = view
        return views


def blob_url(pds: str, did: str, cid: str) -> str:
    """Where a client fetches a blob: the account's own PDS (there is no image CDN here)."""
    return f"{pds}/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}"


def media_view(embed: dict[str, Any], did: str, pds: str | None) -> dict[str, Any] | None:
    """The view of an images, external or video embed."""
    kind = embed.get("$type")
    base = pds or ""
    if kind == "app.bsky.embed.images":
        images = []
        for image in embed.get("images") or []:
            if not isinstance(image, dict):
                continue
            cid = blob_cid(image.get("image")) or ""
            url = blob_url(base, did, cid)
            item: dict[str, Any] = {"thumb": url, "fullsize": url, "alt": image.get("alt", "")}
            if isinstance(image.get("aspectRatio"), dict):
                item["aspectRatio"] = image["aspectRatio"]
            images.append(item)
        return {"$type": "app.bsky.embed.images#view", "images": images}
    if kind == "app.bsky.embed.external":
        external = embed.get("external")
        if not isinstance(external, dict):
            return None
        view: dict[str, Any] = {
            "uri": external.get("uri", ""),
            "title": external.get("title", ""),
            "description": external.get("description", ""),
        }
        thumb = blob_cid(external.get("thumb"))
        if thumb:
            view["thumb"] = blob_url(base, did, thumb)
        return {"$type": "app.bsky.embed.external#view", "external": view}
    if kind == "app.bsky.embed.video":
        cid = blob_cid(embed.get("video")) or ""
        video: dict[str, Any] = {
            "$type": "app.bsky.embed.video#view",
            "cid": cid,
            "playlist": blob_url(base, did, cid),
        }
        for key in ("alt", "aspectRatio"):
            if key in embed:
                video[key] = embed[key]
        return video
    return None


def embed_view(
    embed: dict[str, Any], did: str, pds: str | None, record: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The view of a post's embed; `record` is the view of what it quotes, if anything."""
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record" and record is not None:
        return {"$type": "app.bsky.embed.record#view", "record": record}
    if kind == "app.bsky.embed.recordWithMedia" and record is not None:
        media = embed.get("media")
        media_part = media_view(media, did, pds) if isinstance(media, dict) else None
        if media_part is None:
            return None
        return {
            "$type": "app.bsky.embed.recordWithMedia#view",
            "record": {"$type": "app.bsky.embed.record#view", "record": record},
            "media": media_part,
        }
    return media_view(embed, did, pds)


@dataclass
class FeedItem:
    """One entry of a feed before hydration: a post, or a repost of one."""

    post_uri: str
    repost_uri: str | None = None
    reposted_by: str | None = None
    sort_at: str = ""
    feed_context: str | None = None


def _blocked_author(author: str, rel: Relations) -> dict[str, Any]:
    """`app.bsky.feed.defs#blockedAuthor`: who is behind a blocked post or embed."""
    return {"did": author, "viewer": {"blockedBy": author in rel.blocked_by}}


def _missing(uri: str, rel: Relations) -> dict[str, Any]:
    author = did_of(uri)
    if rel.blocks(author):
        return {
            "$type": "app.bsky.feed.defs#blockedPost",
            "uri": uri,
            "blocked": True,
            "author": _blocked_author(author, rel),
        }
    return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}


class FeedViews(Views):
    """Views that need post hydration plus reply context: feeds and threads."""

    async def feed(self, items: Sequence[FeedItem]) -> list[dict[str, Any]]:
        """feedViewPosts, dropping posts that are gone or whose author blocks or is blocked by
        the viewer (or whose reposter is)."""
        replies = {
            r[0]: (r[1], r[2])
            for r in await self._rows(
                "SELECT uri, reply_root, reply_parent FROM post WHERE uri IN ({IN}) "
                "AND reply_parent IS NOT NULL",
                [i.post_uri for i in items],
            )
        }
        context_uris = [u for pair in replies.values() for u in pair if u]
        dids = [did_of(i.post_uri) for i in items] + [did_of(u) for u in context_uris]
        dids += [i.reposted_by for i in items if i.reposted_by]
        rel = await self.relations(dids)
        posts = await self.posts([i.post_uri for i in items] + context_uris)
        reposters = await self.profiles([i.reposted_by for i in items if i.reposted_by])
        out: list[dict[str, Any]] = []
        for item in items:
            post = posts.get(item.post_uri)
            if post is None or rel.blocks(post["author"]["did"]):
                continue
            view: dict[str, Any] = {"post": post}
            if item.post_uri in replies:
                root, parent = replies[item.post_uri]
                view["reply"] = {
                    "root": self._ref_view(root or parent, posts, rel),
                    "parent": self._ref_view(parent, posts, rel),
                }
            if item.repost_uri and item.reposted_by:
                if item.reposted_by not in reposters or rel.blocks(item.reposted_by):
                    continue
                view["reason"] = {
                    "$type": "app.bsky.feed.defs#reasonRepost",
                    "by": reposters[item.reposted_by],
                    "indexedAt": item.sort_at,
                    "uri": item.repost_uri,
                }
            if item.feed_context:
                view["feedContext"] = item.feed_context
            out.append(view)
        return out

    @staticmethod
    def _ref_view(uri: str, posts: dict[str, dict[str, Any]], rel: Relations) -> dict[str, Any]:
        post = posts.get(uri)
        if post is None or rel.blocks(post["author"]["did"]):
            return _missing(uri, rel)
        return {"$type": "app.bsky.feed.defs#postView", **post}

    async def thread(self, uri: str, depth: int, parent_height: int) -> dict[str, Any] | None:
        """A threadViewPost around `uri`: its parents up to `parent_height`, its replies down to
        `depth`; None if the post is not indexed."""
        chain = [uri]
        parents: dict[str, str] = {}
        current = uri
        for _ in range(parent_height + 1):
            row = await self.db.fetchrow("SELECT reply_parent FROM post WHERE uri = ?", current)
            if row is None or row[0] is None:
                break
            parents[current] = row[0]
            current = row[0]
            chain.append(current)
        children: dict[str, list[str]] = {}
        level = [uri]
        for _ in range(depth):
            if not level:
                break
            rows = await self._rows(
                "SELECT reply_parent, uri FROM post WHERE reply_parent IN ({IN}) "
                "ORDER BY sort_at ASC",
                level,
            )
            level = []
            for parent, child in rows:
                children.setdefault(parent, []).append(child)
                level.append(child)
        everything = chain + [c for kids in children.values() for c in kids]
        rel = await self.relations([did_of(u) for u in everything])
        posts = await self.posts(everything)
        if uri not in posts:
            return None
        root = posts[uri]
        if rel.blocks(root["author"]["did"]):
            return _missing(uri, rel)

        def down(at: str, remaining: int) -> dict[str, Any]:
            view: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": posts[at]}
            if remaining > 0 or at == uri:
                view["replies"] = [
                    down(child, remaining - 1)
                    for child in children.get(at, [])
                    if child in posts and not rel.blocks(posts[child]["author"]["did"])
                ]
            return view

        def up(at: str, height: int) -> dict[str, Any] | None:
            parent = parents.get(at)
            if parent is None or height <= 0:
                return None
            if parent not in posts or rel.blocks(did_of(parent)):
                return _missing(parent, rel)
            view: dict[str, Any] = {
                "$type": "app.bsky.feed.defs#threadViewPost",
                "post": posts[parent],
            }
            above = up(parent, height - 1)
            if above is not None:
                view["parent"] = above
            return view

        thread = down(uri, depth)
        parent_view = up(uri, parent_height)
        if parent_view is not None:
            thread["parent"] = parent_view
        return thread
