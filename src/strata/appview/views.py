"""Hydration: index rows into the view objects the app.bsky lexicons define.

Every function takes many subjects at once and answers with one query per kind of object,
whatever the count (lists are one array parameter), so a page of 50 posts costs the same
handful of queries on SQLite and on Postgres. What does not depend on the viewer (posts,
accounts, counts) comes from the hot-path cache when it is there (`strata.appview.cache`);
viewer state (likes, reposts, follows, blocks) is read from the index for each request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import orjson

from strata.appview.cache import HotCache
from strata.appview.labels import label_view, self_labels
from strata.appview.records import blob_cid, did_of, mentioned_dids, quoted_uri
from strata.database import Database, Query, Row
from strata.pds.sequencer import iso_now

T = TypeVar("T")

THREAD_REPLIES: Final = 1_000
"""The most replies a thread view loads below its post, however many there are."""


@dataclass
class Relations:
    """How a viewer stands to a set of accounts: blocks (their own, or through a list they
    block, either way), follows, and mutes (of the account, or of a list it is on)."""

    blocking: dict[str, str] = field(default_factory=dict)
    blocking_by_list: dict[str, str] = field(default_factory=dict)
    """Account -> a moderation list the viewer blocks it through."""
    blocked_by: set[str] = field(default_factory=set)
    blocked_by_list: dict[str, str] = field(default_factory=dict)
    """Account -> a moderation list it blocks the viewer through (also in `blocked_by`)."""
    following: dict[str, str] = field(default_factory=dict)
    followed_by: dict[str, str] = field(default_factory=dict)
    muted: set[str] = field(default_factory=set)
    muted_by_list: dict[str, str] = field(default_factory=dict)
    """Account -> a list the viewer mutes it through."""
    muted_reposts: set[str] = field(default_factory=set)
    muted_quotes: set[str] = field(default_factory=set)
    """Accounts only whose reposts, or quote posts, the viewer mutes."""

    def blocks(self, did: str) -> bool:
        """Whether either side blocks the other."""
        return did in self.blocking or did in self.blocking_by_list or did in self.blocked_by

    def mutes(self, did: str) -> bool:
        """Whether the viewer mutes the account, directly or through a list."""
        return did in self.muted or did in self.muted_by_list


@dataclass(frozen=True, slots=True)
class Actor:
    """An indexed account and its profile record, as every view of it starts."""

    did: str
    handle: str
    pds: str | None
    status: str
    display_name: str | None
    description: str | None
    avatar_cid: str | None
    banner_cid: str | None
    pinned_post: str | None
    created_at: str | None
    indexed_at: str | None
    labeler: bool
    """The account publishes an `app.bsky.labeler.service` record."""
    self_labels: tuple[dict[str, Any], ...]
    """The labels the account's profile record puts on itself."""
    basic: dict[str, Any]
    """The profileViewBasic without viewer state."""


@dataclass(frozen=True, slots=True)
class Post:
    """An indexed post: its record and what the views need from it."""

    uri: str
    cid: str
    did: str
    record: dict[str, Any]
    indexed_at: str
    reply_root: str | None
    reply_parent: str | None
    threadgate: dict[str, Any] | None
    """The threadgate record naming this post: who may reply."""
    postgate: dict[str, Any] | None
    """The postgate record naming this post: who may quote it, and quotes detached from it."""
    size: int
    """The record's JSON length: the cache's measure of it."""


@dataclass(frozen=True, slots=True)
class ListEntry:
    """An indexed list record and how many accounts are on it."""

    uri: str
    cid: str
    creator: str
    record: dict[str, Any]
    indexed_at: str
    members: int


ACTOR_COUNTS: Final = ("followers", "follows", "posts", "lists", "feedgens", "starter_packs")

RELATIONS_QUERY: Final = (
    "SELECT 'blocking', subject, uri FROM block WHERE creator = ? AND subject = ANY(?) "
    "UNION ALL SELECT 'blocked_by', creator, uri FROM block WHERE subject = ? AND creator = ANY(?) "
    "UNION ALL SELECT 'following', subject, uri FROM follow WHERE creator = ? AND subject = ANY(?) "
    "UNION ALL SELECT 'followed_by', creator, uri FROM follow "
    "WHERE subject = ? AND creator = ANY(?) "
    "UNION ALL SELECT 'blocking_by_list', i.subject, b.subject FROM list_block b "
    "JOIN list_item i ON i.list_uri = b.subject WHERE b.creator = ? AND i.subject = ANY(?) "
    "UNION ALL SELECT 'blocked_by_list', b.creator, b.subject FROM list_block b "
    "JOIN list_item i ON i.list_uri = b.subject WHERE i.subject = ? AND b.creator = ANY(?) "
    "UNION ALL SELECT CASE WHEN only_reposts = 0 AND only_quoteposts = 0 THEN 'muted' "
    "WHEN only_reposts = 1 AND only_quoteposts = 1 THEN 'muted_reposts_and_quotes' "
    "WHEN only_reposts = 1 THEN 'muted_reposts' ELSE 'muted_quotes' END, subject, '' "
    "FROM mute WHERE muter = ? AND subject = ANY(?) "
    "UNION ALL SELECT 'muted_by_list', i.subject, m.list_uri FROM list_mute m "
    "JOIN list_item i ON i.list_uri = m.list_uri WHERE m.muter = ? AND i.subject = ANY(?)"
)
"""How the viewer stands to a list of accounts, in one query: viewer, list, eight times."""

LIST_QUERY: Final = (
    "SELECT l.uri, r.cid, l.creator, r.json, r.indexed_at, coalesce(n.members, 0) FROM list l "
    "JOIN record r ON r.uri = l.uri LEFT JOIN record_counts n ON n.uri = l.uri "
    "WHERE l.uri = ANY(?)"
)

LIST_VIEWER_QUERY: Final = (
    "SELECT 'muted', list_uri, '' FROM list_mute WHERE muter = ? AND list_uri = ANY(?) "
    "UNION ALL SELECT 'blocked', subject, uri FROM list_block "
    "WHERE creator = ? AND subject = ANY(?)"
)
"""Whether the viewer mutes, and blocks, each of a list of lists: viewer, list, twice."""

POST_VIEWER_QUERY: Final = (
    "SELECT 'like', subject, uri FROM likes WHERE creator = ? AND subject = ANY(?) "
    "UNION ALL SELECT 'repost', subject, uri FROM repost WHERE creator = ? AND subject = ANY(?) "
    "UNION ALL SELECT 'bookmarked', subject_uri, '' FROM bookmark "
    "WHERE creator = ? AND subject_uri = ANY(?)"
)
"""The viewer's likes, reposts and bookmarks of a list of records: viewer, list, three times."""

BLOCKS_AMONG_QUERY: Final = (
    "SELECT creator, subject FROM block WHERE creator = ANY(?) AND subject = ANY(?) "
    "UNION ALL SELECT b.creator, i.subject FROM list_block b "
    "JOIN list_item i ON i.list_uri = b.subject WHERE b.creator = ANY(?) AND i.subject = ANY(?)"
)
"""Blocks (also through a list) between accounts of a set: the set, four times."""

POST_COUNTS: Final = ("likes", "reposts", "replies", "quotes", "bookmarks")


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """One kind of object for a list of keys: what is not already known (in this request, or
    in the cache when `cached`) is read with `query(missing)` and built by `parse`."""

    kind: str
    keys: Iterable[str]
    query: Callable[[list[str]], Query]
    parse: Callable[[list[str], list[Row]], dict[str, T]]
    cached: bool = True
    weigh: Callable[[T], int] | None = None


class Views:
    """Builds views from the index for one request."""

    def __init__(
        self,
        db: Database,
        cache: HotCache,
        viewer: str | None,
        labelers: Sequence[str] = (),
        redacting: frozenset[str] = frozenset(),
    ) -> None:
        self.db = db
        self.cache = cache
        self.viewer = viewer
        self.labelers = frozenset(labelers)
        """Whose labels the views carry (the request's `atproto-accept-labelers`)."""
        self.redacting = redacting
        """Labelers whose `!takedown` removes what it is on from the answer."""
        self._relations = Relations()
        self._known: dict[str, dict[str, Any]] = {}
        """What this request has looked up, by kind: asked twice, each is read once."""

    async def _resolve(self, *lookups: Lookup[Any]) -> list[dict[str, Any]]:
        """Each lookup's objects, by key (those that exist); everything missing is read in
        one `fetch_many`."""
        plans: list[tuple[Lookup[Any], list[str], list[str]]] = []
        for lookup in lookups:
            known = self._known.setdefault(lookup.kind, {})
            asked = list(dict.fromkeys(lookup.keys))
            missing = [k for k in asked if k not in known]
            if missing and lookup.cached:
                known.update(self.cache.get_many(lookup.kind, missing))
                missing = [k for k in missing if k not in known]
            plans.append((lookup, asked, missing))
        queries = [lookup.query(missing) for lookup, _, missing in plans if missing]
        if queries:
            epoch = self.cache.epoch
            results = iter(await self.db.fetch_many(queries))
            for lookup, _, missing in plans:
                if missing:
                    loaded = lookup.parse(missing, next(results))
                    if lookup.cached:
                        self.cache.put_many(lookup.kind, loaded, epoch, lookup.weigh)
                    self._known[lookup.kind].update(loaded)
        found = []
        for lookup, asked, _ in plans:
            known = self._known[lookup.kind]
            found.append({k: known[k] for k in asked if k in known})
        return found

    # What there is to look up

    def _actors(self, dids: Iterable[str]) -> Lookup[Actor]:
        def query(missing: list[str]) -> Query:
            return (
                "SELECT a.did, a.handle, a.pds, a.status, p.display_name, p.description, "
                "p.avatar_cid, p.banner_cid, p.pinned_post, p.created_at, p.indexed_at, "
                "EXISTS (SELECT 1 FROM labeler b WHERE b.creator = a.did), r.json, r.cid "
                "FROM actor a LEFT JOIN profile p ON p.did = a.did LEFT JOIN record r "
                "ON r.uri = 'at://' || a.did || '/app.bsky.actor.profile/self' "
                "WHERE a.did = ANY(?)",
                (missing,),
            )

        return Lookup("actor", dids, query, _parse_actors)

    def _actor_counts(self, dids: Iterable[str]) -> Lookup[tuple[int, ...]]:
        def query(missing: list[str]) -> Query:
            sql = f"SELECT did, {', '.join(ACTOR_COUNTS)} FROM actor_counts WHERE did = ANY(?)"
            return sql, (missing,)

        return Lookup("actor_counts", dids, query, _counts(len(ACTOR_COUNTS)))

    def _posts(self, uris: Iterable[str]) -> Lookup[Post]:
        def query(missing: list[str]) -> Query:
            return (
                "SELECT r.uri, r.cid, r.did, r.json, p.indexed_at, p.reply_root, p.reply_parent, "
                "(SELECT g.json FROM threadgate t JOIN record g ON g.uri = t.uri "
                "WHERE t.post_uri = p.uri LIMIT 1), "
                "(SELECT g.json FROM postgate t JOIN record g ON g.uri = t.uri "
                "WHERE t.post_uri = p.uri LIMIT 1) "
                "FROM post p JOIN record r ON r.uri = p.uri WHERE p.uri = ANY(?)",
                (missing,),
            )

        return Lookup("post", uris, query, _parse_posts, weigh=_post_size)

    def _post_counts(self, uris: Iterable[str]) -> Lookup[tuple[int, ...]]:
        def query(missing: list[str]) -> Query:
            sql = f"SELECT uri, {', '.join(POST_COUNTS)} FROM record_counts WHERE uri = ANY(?)"
            return sql, (missing,)

        return Lookup("post_counts", uris, query, _counts(len(POST_COUNTS)))

    def _labels(self, subjects: Iterable[str]) -> Lookup[tuple[tuple[Any, ...], ...]]:
        """Labels from labelers on records and accounts (all of them: a request keeps those
        of the labelers it accepts)."""

        def parse(missing: list[str], rows: list[Row]) -> dict[str, tuple[tuple[Any, ...], ...]]:
            found: dict[str, list[tuple[Any, ...]]] = {key: [] for key in missing}
            for uri, *label in rows:
                found[uri].append(tuple(label))
            return {key: tuple(labels) for key, labels in found.items()}

        def query(missing: list[str]) -> Query:
            return (
                "SELECT uri, src, val, cid, cts, exp FROM label WHERE uri = ANY(?) AND neg = 0",
                (missing,),
            )

        return Lookup("labels", subjects, query, parse)

    def _labels_on(self, *subjects: str) -> list[dict[str, Any]]:
        """The accepted labelers' current labels on `subjects` (already looked up)."""
        known = self._known.get("labels", {})
        now = iso_now()
        return [
            label_view(src, subject, val, cid, cts)
            for subject in subjects
            for src, val, cid, cts, exp in known.get(subject, ())
            if src in self.labelers and (exp is None or exp > now)
        ]

    def _taken_down(self, *subjects: str) -> bool:
        """Whether a labeler the request redacts with has taken one of `subjects` down."""
        known = self._known.get("labels", {})
        return any(
            src in self.redacting and val == "!takedown"
            for subject in subjects
            for src, val, *_ in known.get(subject, ())
        )

    async def record_state(
        self, uris: Sequence[str]
    ) -> tuple[dict[str, tuple[int, ...]], dict[str, dict[str, str]]]:
        """The counts of records (posts, feeds, labelers: `POST_COUNTS`), and the viewer's
        likes of them."""
        counts, liked = await self._resolve(self._post_counts(uris), self._post_viewer(uris))
        return counts, liked

    def _post_viewer(self, uris: Iterable[str]) -> Lookup[dict[str, str]]:
        viewer = self.viewer or ""

        def query(missing: list[str]) -> Query:
            return POST_VIEWER_QUERY, (viewer, missing) * 3

        def parse(missing: list[str], rows: list[Row]) -> dict[str, dict[str, str]]:
            state: dict[str, dict[str, str]] = {uri: {} for uri in missing}
            for kind, subject, uri in rows:
                state[subject][kind] = uri
            return state

        return Lookup("post_viewer", uris if self.viewer else (), query, parse, cached=False)

    def _relation(self, dids: Iterable[str]) -> Lookup[bool]:
        viewer = self.viewer or ""
        others = [d for d in dids if d != viewer] if self.viewer else []

        def query(missing: list[str]) -> Query:
            return RELATIONS_QUERY, (viewer, missing) * 8

        def parse(missing: list[str], rows: list[Row]) -> dict[str, bool]:
            found = self._relations
            for kind, did, uri in rows:
                if kind == "blocked_by":
                    found.blocked_by.add(did)
                elif kind == "blocked_by_list":
                    found.blocked_by.add(did)
                    found.blocked_by_list[did] = uri
                elif kind == "muted":
                    found.muted.add(did)
                elif kind.startswith("muted_") and kind != "muted_by_list":
                    if "reposts" in kind:
                        found.muted_reposts.add(did)
                    if "quotes" in kind:
                        found.muted_quotes.add(did)
                else:
                    getattr(found, kind)[did] = uri
            return dict.fromkeys(missing, True)

        return Lookup("relation", others, query, parse, cached=False)

    def _lists(self, uris: Iterable[str]) -> Lookup[ListEntry]:
        def parse(missing: list[str], rows: list[Row]) -> dict[str, ListEntry]:
            return {
                uri: ListEntry(uri, cid, creator, orjson.loads(raw), at, int(members))
                for uri, cid, creator, raw, at, members in rows
            }

        return Lookup("list", uris, lambda missing: (LIST_QUERY, (missing,)), parse)

    def _list_viewer(self, uris: Iterable[str]) -> Lookup[dict[str, Any]]:
        viewer = self.viewer or ""

        def query(missing: list[str]) -> Query:
            return LIST_VIEWER_QUERY, (viewer, missing, viewer, missing)

        def parse(missing: list[str], rows: list[Row]) -> dict[str, dict[str, Any]]:
            state: dict[str, dict[str, Any]] = {uri: {"muted": False} for uri in missing}
            for kind, uri, block in rows:
                if kind == "muted":
                    state[uri]["muted"] = True
                else:
                    state[uri]["blocked"] = block
            return state

        keys = uris if self.viewer else ()
        return Lookup("list_viewer", keys, query, parse, cached=False)

    def _viewer_rows(self, kind: str, sql: str, keys: Iterable[str]) -> Lookup[bool]:
        """Which of `keys` the viewer has a row for in `sql` (viewer, list)."""
        viewer = self.viewer or ""

        def parse(missing: list[str], rows: list[Row]) -> dict[str, bool]:
            found = {row[0] for row in rows}
            return {key: key in found for key in missing}

        keys = keys if self.viewer else ()
        return Lookup(kind, keys, lambda missing: (sql, (viewer, missing)), parse, cached=False)

    def _thread_mutes(self, roots: Iterable[str]) -> Lookup[bool]:
        return self._viewer_rows(
            "thread_mute",
            "SELECT root_uri FROM thread_mute WHERE muter = ? AND root_uri = ANY(?)",
            roots,
        )

    def _memberships(self, lists: Iterable[str]) -> Lookup[bool]:
        return self._viewer_rows(
            "member_of",
            "SELECT list_uri FROM list_item WHERE subject = ? AND list_uri = ANY(?)",
            lists,
        )

    async def list_basics(self, uris: Iterable[str]) -> dict[str, dict[str, Any]]:
        """listViewBasic of indexed lists."""
        wanted = list(uris)
        lists, _, _ = await self._resolve(
            self._lists(wanted), self._list_viewer(wanted), self._labels(wanted)
        )
        return {uri: self._list_basic(entry) for uri, entry in lists.items()}

    def _list_basic(self, entry: ListEntry) -> dict[str, Any]:
        record = entry.record
        view: dict[str, Any] = {
            "uri": entry.uri,
            "cid": entry.cid,
            "name": record.get("name", ""),
            "purpose": record.get("purpose", ""),
            "listItemCount": entry.members,
            "labels": self._labels_on(entry.uri),
            "indexedAt": entry.indexed_at,
        }
        avatar = blob_cid(record.get("avatar"))
        creator = self._known.get("actor", {}).get(entry.creator)
        if avatar and creator is not None and creator.pds:
            view["avatar"] = blob_url(creator.pds, entry.creator, avatar)
        if self.viewer is not None:
            view["viewer"] = self._known.get("list_viewer", {}).get(entry.uri, {"muted": False})
        return view

    async def _relation_lists(self) -> None:
        """The lists the viewer's mutes and blocks of accounts go through, for their views."""
        rel = self._relations
        uris = {*rel.muted_by_list.values(), *rel.blocking_by_list.values()}
        if uris:
            await self.list_basics(uris)

    # Accounts

    async def relations(self, dids: Iterable[str]) -> Relations:
        """How the viewer stands to `dids` (and to every account asked about before in this
        request: each is looked up once)."""
        await self._resolve(self._relation(dids))
        return self._relations

    async def blocks_among(self, dids: Iterable[str]) -> set[frozenset[str]]:
        """The pairs of `dids` in which one blocks the other (whoever the viewer is): a reply
        and its parent, a quote and the quoted post, are not shown across them."""
        wanted = list(dict.fromkeys(dids))
        rows = await self.db.fetch(BLOCKS_AMONG_QUERY, *(wanted,) * 4)
        return {frozenset((one, other)) for one, other in rows if one != other}

    async def actors(self, dids: Iterable[str]) -> dict[str, Actor]:
        """Indexed accounts (of any status), with their profile records."""
        (actors,) = await self._resolve(self._actors(dids))
        return actors

    async def profiles(
        self, dids: Sequence[str], level: str = "basic"
    ) -> dict[str, dict[str, Any]]:
        """Views of active accounts: `basic`, `view` or `detailed` (profileViewDetailed)."""
        actors, counts, _, _ = await self._resolve(
            self._actors(dids),
            self._actor_counts(dids if level == "detailed" else ()),
            self._relation(dids),
            self._labels(_account_subjects(dids)),
        )
        live = [d for d in dict.fromkeys(dids) if self._shown(actors.get(d))]
        await self._relation_lists()
        pinned: dict[str, Post] = {}
        if level == "detailed":
            (pinned,) = await self._resolve(
                self._posts(p for d in live if (p := actors[d].pinned_post) is not None)
            )
        return {did: self._profile(actors[did], level, counts, pinned) for did in live}

    def _shown(self, actor: Actor | None) -> bool:
        """Whether an account may be shown: active, and not taken down by a labeler the
        request redacts with."""
        return (
            actor is not None
            and actor.status == "active"
            and not self._taken_down(*_account_subjects([actor.did]))
        )

    def _profile(
        self,
        actor: Actor,
        level: str,
        counts: dict[str, tuple[int, ...]],
        pinned: dict[str, Post],
    ) -> dict[str, Any]:
        view = dict(actor.basic)
        view["labels"] = [*actor.self_labels, *self._labels_on(*_account_subjects([actor.did]))]
        if level != "basic":
            if actor.description:
                view["description"] = actor.description
            if actor.indexed_at:
                view["indexedAt"] = actor.indexed_at
        if level == "detailed":
            if actor.banner_cid and actor.pds:
                view["banner"] = blob_url(actor.pds, actor.did, actor.banner_cid)
            if actor.pinned_post in pinned:
                view["pinnedPost"] = {
                    "uri": actor.pinned_post,
                    "cid": pinned[actor.pinned_post].cid,
                }
            followers, follows, posts, lists, feedgens, starter_packs = counts[actor.did]
            view["followersCount"] = followers
            view["followsCount"] = follows
            view["postsCount"] = posts
            view["associated"] = {
                "lists": lists,
                "feedgens": feedgens,
                "starterPacks": starter_packs,
                "labeler": actor.labeler,
            }
        if self.viewer is not None:
            view["viewer"] = self._actor_viewer(actor.did, self._relations)
        return view

    def _actor_viewer(self, did: str, rel: Relations) -> dict[str, Any]:
        state: dict[str, Any] = {"muted": rel.mutes(did), "blockedBy": did in rel.blocked_by}
        if not state["muted"]:
            if did in rel.muted_reposts:
                state["mutedOnlyReposts"] = True
            if did in rel.muted_quotes:
                state["mutedOnlyQuoteposts"] = True
        lists = self._known.get("list", {})
        if did in rel.muted_by_list and rel.muted_by_list[did] in lists:
            state["mutedByList"] = self._list_basic(lists[rel.muted_by_list[did]])
        if did in rel.blocking:
            state["blocking"] = rel.blocking[did]
        if did in rel.blocking_by_list and rel.blocking_by_list[did] in lists:
            state["blockingByList"] = self._list_basic(lists[rel.blocking_by_list[did]])
        if not rel.blocks(did):
            if did in rel.following:
                state["following"] = rel.following[did]
            if did in rel.followed_by:
                state["followedBy"] = rel.followed_by[did]
        return state

    # Posts

    async def post_entries(self, uris: Iterable[str]) -> dict[str, Post]:
        """Indexed posts, whoever wrote them."""
        (posts,) = await self._resolve(self._posts(uris))
        return posts

    async def posts(
        self, uris: Sequence[str], depth: int = 1, people: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """postViews of posts by active accounts; embeds are resolved `depth` levels deep.
        `people` are other accounts the caller will show (their profiles and relations are
        read with the posts')."""
        # The posts first (from the cache, usually), then everything their views need, read
        # together: a post's author is in its URI.
        entries = await self.post_entries(uris)
        accounts = [*(did_of(u) for u in uris), *people]
        roots = [e.reply_root or e.uri for e in entries.values()]
        gate_lists = [
            rule["list"]
            for e in entries.values()
            for rule in _rules(e.threadgate)
            if rule.get("$type") == "app.bsky.feed.threadgate#listRule"
            and isinstance(rule.get("list"), str)
        ]
        actors, counts, viewer_state, _, muted_threads, memberships, _ = await self._resolve(
            self._actors(accounts),
            self._post_counts(uris),
            self._post_viewer(uris),
            self._relation(accounts),
            self._thread_mutes(roots),
            self._memberships(gate_lists),
            self._labels([*uris, *_account_subjects(accounts)]),
        )
        await self._relation_lists()
        live = {d for d, a in actors.items() if self._shown(a)}
        present = [
            u
            for u in dict.fromkeys(uris)
            if u in entries and entries[u].did in live and not self._taken_down(u)
        ]
        embeds: dict[str, dict[str, Any]] = {}
        if depth > 0:
            embeds = await self._embeds([entries[u] for u in present], actors, depth)
        author_views = {d: self._profile(actors[d], "basic", {}, {}) for d in live}
        views: dict[str, dict[str, Any]] = {}
        for uri in present:
            entry = entries[uri]
            likes, reposts, replies, quotes, bookmarks = counts.get(uri, (0,) * len(POST_COUNTS))
            view: dict[str, Any] = {
                "uri": uri,
                "cid": entry.cid,
                "author": author_views[entry.did],
                "record": entry.record,
                "bookmarkCount": bookmarks,
                "replyCount": replies,
                "repostCount": reposts,
                "likeCount": likes,
                "quoteCount": quotes,
                "indexedAt": entry.indexed_at,
                "labels": [
                    *self_labels(entry.record, entry.did, uri, entry.cid, entry.indexed_at),
                    *self._labels_on(uri),
                ],
            }
            if uri in embeds:
                view["embed"] = embeds[uri]
            if self.viewer is not None:
                mine = entry.did == self.viewer
                own = viewer_state.get(uri, {})
                state: dict[str, Any] = {
                    "bookmarked": "bookmarked" in own,
                    "threadMuted": muted_threads.get(entry.reply_root or uri, False),
                    "embeddingDisabled": not mine and _quotes_disabled(entry.postgate),
                }
                state.update({k: v for k, v in own.items() if k != "bookmarked"})
                if entry.threadgate is not None:
                    state["replyDisabled"] = not mine and not self._may_reply(entry, memberships)
                view["viewer"] = state
            views[uri] = view
        return views

    def _may_reply(self, post: Post, memberships: dict[str, bool]) -> bool:
        """Whether the viewer passes one of the rules of the post's threadgate (no `allow`:
        anyone may reply; an empty one: nobody but the author)."""
        gate = post.threadgate or {}
        if "allow" not in gate:
            return True
        rel, viewer = self._relations, self.viewer
        for rule in _rules(gate):
            kind = rule.get("$type")
            if kind == "app.bsky.feed.threadgate#mentionRule":
                if viewer in mentioned_dids(post.record):
                    return True
            elif kind == "app.bsky.feed.threadgate#followingRule":
                if post.did in rel.followed_by:  # the author follows the viewer
                    return True
            elif kind == "app.bsky.feed.threadgate#followerRule":
                if post.did in rel.following:  # the viewer follows the author
                    return True
            elif kind == "app.bsky.feed.threadgate#listRule" and memberships.get(
                rule.get("list", "")
            ):
                return True
        return False

    async def _embeds(
        self, entries: list[Post], actors: dict[str, Actor], depth: int
    ) -> dict[str, dict[str, Any]]:
        quoted: dict[str, str] = {}
        for entry in entries:
            target = quoted_uri(entry.record.get("embed"))
            if target:
                quoted[entry.uri] = target
        targets = list(dict.fromkeys(quoted.values()))
        post_targets = [t for t in targets if "/app.bsky.feed.post/" in t]
        feed_targets = [t for t in targets if "/app.bsky.feed.generator/" in t]
        rel = await self.relations(did_of(t) for t in targets)
        quoted_posts = await self.posts(post_targets, depth - 1) if post_targets else {}
        quoted_feeds = await self.generators(feed_targets) if feed_targets else {}
        views: dict[str, dict[str, Any]] = {}
        for entry in entries:
            embed = entry.record.get("embed")
            if not isinstance(embed, dict):
                continue
            target = quoted.get(entry.uri)
            inner = None
            if target is not None:
                inner = self._record_embed(entry.uri, target, quoted_posts, quoted_feeds, rel)
            view = embed_view(embed, entry.did, actors[entry.did].pds, inner)
            if view is not None:
                views[entry.uri] = view
        return views

    def _record_embed(
        self,
        quoting: str,
        target: str,
        posts: dict[str, dict[str, Any]],
        feeds: dict[str, dict[str, Any]],
        rel: Relations,
    ) -> dict[str, Any]:
        if target in feeds:
            return {"$type": "app.bsky.feed.defs#generatorView", **feeds[target]}
        entry = self._known.get("post", {}).get(target)
        if entry is not None and quoting in _detached(entry.postgate):
            # The quoted post's author detached this quote from it.
            return {"$type": "app.bsky.embed.record#viewDetached", "uri": target, "detached": True}
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
            "labels": post["labels"],
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
        rows = await self.db.fetch(
            "SELECT r.uri, r.cid, r.did, r.json, r.indexed_at, g.feed_did FROM feed_generator g "
            "JOIN record r ON r.uri = g.uri WHERE g.uri = ANY(?)",
            list(dict.fromkeys(uris)),
        )
        creators = await self.profiles([r[2] for r in rows], "view")
        present = [r[0] for r in rows if r[2] in creators]
        actors, counts, liked, _ = await self._resolve(
            self._actors(creators),
            self._post_counts(present),
            self._post_viewer(present),
            self._labels(present),
        )
        views: dict[str, dict[str, Any]] = {}
        for uri, cid, did, raw, indexed_at, feed_did in rows:
            if did not in creators:
                continue
            record = orjson.loads(raw)
            view: dict[str, Any] = {
                "uri": uri,
                "cid": cid,
                "did": feed_did,
                "creator": creators[did],
                "displayName": record.get("displayName", ""),
                "likeCount": counts[uri][0],
                "labels": self._labels_on(uri),
                "indexedAt": indexed_at,
            }
            for key in ("description", "descriptionFacets", "acceptsInteractions", "contentMode"):
                if key in record:
                    view[key] = record[key]
            avatar = blob_cid(record.get("avatar"))
            pds = actors[did].pds
            if avatar and pds:
                view["avatar"] = blob_url(pds, did, avatar)
            if self.viewer is not None:
                view["viewer"] = {k: v for k, v in liked.get(uri, {}).items() if k == "like"}
            views[uri] = view
        return views

    async def shown_generators(self, uris: Sequence[str]) -> list[dict[str, Any]]:
        """generatorViews in the order of `uris`, leaving out feeds whose creator blocks the
        viewer or is blocked."""
        found = await self.generators(uris)
        rel = await self.relations(view["creator"]["did"] for view in found.values())
        return [found[uri] for uri in uris if uri in found and not rel.blocks(did_of(uri))]


def _account_subjects(dids: Iterable[str]) -> list[str]:
    """What labels on an account are put on: its DID, and its profile record."""
    return [s for did in dids for s in (did, f"at://{did}/app.bsky.actor.profile/self")]


def _rules(threadgate: dict[str, Any] | None) -> list[dict[str, Any]]:
    allow = (threadgate or {}).get("allow")
    return [rule for rule in allow if isinstance(rule, dict)] if isinstance(allow, list) else []


def _quotes_disabled(postgate: dict[str, Any] | None) -> bool:
    rules = (postgate or {}).get("embeddingRules")
    return isinstance(rules, list) and any(
        isinstance(r, dict) and r.get("$type") == "app.bsky.feed.postgate#disableRule"
        for r in rules
    )


def _detached(postgate: dict[str, Any] | None) -> list[str]:
    uris = (postgate or {}).get("detachedEmbeddingUris")
    return [u for u in uris if isinstance(u, str)] if isinstance(uris, list) else []


def _parse_actors(missing: list[str], rows: list[Row]) -> dict[str, Actor]:
    actors = {}
    for row in rows:
        did, handle, pds, status, name, description, avatar, banner, pinned, at, seen = row[:11]
        basic: dict[str, Any] = {"did": did, "handle": handle or "handle.invalid"}
        if name:
            basic["displayName"] = name
        if avatar and pds:
            basic["avatar"] = blob_url(pds, did, avatar)
        if at:
            basic["createdAt"] = at
        profile_labels: tuple[dict[str, Any], ...] = ()
        if row[12]:
            uri = f"at://{did}/app.bsky.actor.profile/self"
            profile_labels = tuple(self_labels(orjson.loads(row[12]), did, uri, row[13], seen))
        actors[did] = Actor(
            did, basic["handle"], pds, status, name, description, avatar, banner, pinned, at,
            seen, bool(row[11]), profile_labels, basic,
        )  # fmt: skip
    return actors


def _parse_posts(missing: list[str], rows: list[Row]) -> dict[str, Post]:
    return {
        uri: Post(
            uri,
            cid,
            did,
            orjson.loads(raw),
            at,
            root,
            parent,
            orjson.loads(threadgate) if threadgate else None,
            orjson.loads(postgate) if postgate else None,
            len(raw),
        )
        for uri, cid, did, raw, at, root, parent, threadgate, postgate in rows
    }


def _counts(width: int) -> Callable[[list[str], list[Row]], dict[str, tuple[int, ...]]]:
    """Counts rows (key, n, n, ...) by key; keys without a row count zero."""

    def parse(missing: list[str], rows: list[Row]) -> dict[str, tuple[int, ...]]:
        counts: dict[str, tuple[int, ...]] = dict.fromkeys(missing, (0,) * width)
        for row in rows:
            counts[row[0]] = tuple(int(n) for n in row[1:])
        return counts

    return parse


def _post_size(post: Post) -> int:
    return post.size


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


def maybe_post(uri: str, posts: dict[str, dict[str, Any]], rel: Relations) -> dict[str, Any]:
    """A post's view by its `$type`: the post, or that it is blocked or not found."""
    post = posts.get(uri)
    if post is None or rel.blocks(post["author"]["did"]):
        return _missing(uri, rel)
    return {"$type": "app.bsky.feed.defs#postView", **post}


ANCESTORS_QUERY: Final = (
    "WITH RECURSIVE up (uri, parent, height) AS ("
    "SELECT uri, reply_parent, 0 FROM post WHERE uri = ? "
    "UNION ALL SELECT p.uri, p.reply_parent, up.height + 1 FROM post p "
    "JOIN up ON p.uri = up.parent WHERE up.height < ?) "
    "SELECT uri, parent FROM up"
)
"""The post and its indexed parents, up to a height: (uri, its parent) each."""

DESCENDANTS_QUERY: Final = (
    "WITH RECURSIVE down (uri, parent, sort_at, depth) AS ("
    "SELECT uri, reply_parent, sort_at, 1 FROM post WHERE reply_parent = ? "
    "UNION ALL SELECT p.uri, p.reply_parent, p.sort_at, down.depth + 1 FROM post p "
    "JOIN down ON p.reply_parent = down.uri WHERE down.depth < ?) "
    "SELECT parent, uri FROM down ORDER BY sort_at, uri LIMIT ?"
)
"""Replies to a post down to a depth, oldest first, at most a number of them."""


class FeedViews(Views):
    """Views that need post hydration plus reply context: feeds and threads."""

    async def feed(
        self, items: Sequence[FeedItem], hide_muted: bool = False
    ) -> list[dict[str, Any]]:
        """feedViewPosts, dropping posts that are gone or whose author blocks or is blocked by
        the viewer (or whose reposter is); with `hide_muted` (timelines), also the posts of
        accounts the viewer mutes, and the reposts or quote posts it mutes for some."""
        entries = await self.post_entries(i.post_uri for i in items)
        replies = {
            uri: (entry.reply_root, entry.reply_parent)
            for uri, entry in entries.items()
            if entry.reply_parent is not None
        }
        context_uris = [u for pair in replies.values() for u in pair if u]
        reposted_by = [i.reposted_by for i in items if i.reposted_by]
        posts = await self.posts([i.post_uri for i in items] + context_uris, people=reposted_by)
        reposters = await self.profiles(reposted_by)
        rel = self._relations
        out: list[dict[str, Any]] = []
        for item in items:
            post = posts.get(item.post_uri)
            if post is None or rel.blocks(post["author"]["did"]):
                continue
            if hide_muted and self._muted_in_timeline(item, post, rel):
                continue
            view: dict[str, Any] = {"post": post}
            if item.post_uri in replies:
                root, parent = replies[item.post_uri]
                view["reply"] = {
                    "root": maybe_post(root or parent, posts, rel),
                    "parent": maybe_post(parent, posts, rel),
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
    def _muted_in_timeline(item: FeedItem, post: dict[str, Any], rel: Relations) -> bool:
        author = post["author"]["did"]
        if item.reposted_by is not None:
            by = item.reposted_by
            if rel.mutes(by) or by in rel.muted_reposts:
                return True
        quoting = quoted_uri(post["record"].get("embed")) is not None
        return rel.mutes(author) or (quoting and author in rel.muted_quotes)

    async def thread(self, uri: str, depth: int, parent_height: int) -> dict[str, Any] | None:
        """A threadViewPost around `uri`: its parents up to `parent_height`, its replies down to
        `depth`; None if the post is not indexed."""
        parents = {
            child: parent
            for child, parent in await self.db.fetch(ANCESTORS_QUERY, uri, parent_height)
            if parent is not None
        }
        chain = [uri, *parents.values()]
        children: dict[str, list[str]] = {}
        for parent, child in await self.db.fetch(DESCENDANTS_QUERY, uri, depth, THREAD_REPLIES):
            children.setdefault(parent, []).append(child)
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
