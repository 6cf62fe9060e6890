"""Threads as the official app reads them (`app.bsky.unspecced.getPostThreadV2` and
`getPostThreadOtherV2`): a flat list of items around an anchor post, each with its depth.

The anchor's parents come first (up to `MAX_PARENTS`, each a post, or where the chain stops: a
post not found, or blocked), then the anchor (depth 0), then its replies depth first. Replies are
sorted at every level, with the reference AppView's bumps ahead of the chosen order (`newest`,
`oldest`, `top`): the OP thread (the oldest unbroken line of replies by the root's author), then
the root's author, then the viewer, then accounts the viewer follows; below the anchor's direct
replies, each level keeps `branchingFactor` of them. A reply by an account on either side of a
block from the viewer, or from its parent's author, is left out with everything under it.

The "other" replies are the anchor's direct replies that the thread leaves out: those the root's
threadgate hides (`hiddenReplies`, except from their own author), those by accounts the viewer
mutes, and lone pushpins. `getPostThreadOtherV2` lists them; `hasOtherReplies` says there are.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from strata.appview.records import did_of
from strata.appview.views import THREAD_REPLIES, FeedViews, Post, Relations

MAX_PARENTS: Final = 50
"""Parents above the anchor, as the reference AppView's default `maxThreadParents`."""
ITEM: Final = "app.bsky.unspecced.defs#"

LINEAGE_QUERY: Final = (
    "WITH RECURSIVE up (uri, parent, height) AS ("
    "SELECT uri, reply_parent, 0 FROM post WHERE uri = ? "
    "UNION ALL SELECT p.uri, p.reply_parent, up.height + 1 FROM post p "
    "JOIN up ON p.uri = up.parent WHERE up.height < ?) "
    "SELECT uri FROM up"
)
"""The post and its indexed parents, up to a height."""

REPLIES_QUERY: Final = (
    "WITH RECURSIVE down (uri, sort_at, depth) AS ("
    "SELECT uri, sort_at, 1 FROM post WHERE reply_parent = ? "
    "UNION ALL SELECT p.uri, p.sort_at, down.depth + 1 FROM post p "
    "JOIN down ON p.reply_parent = down.uri WHERE down.depth < ?) "
    "SELECT uri FROM down ORDER BY sort_at, uri LIMIT ?"
)
"""Replies to a post down to a depth, at most a number of them, oldest first."""

OP_THREAD_QUERY: Final = (
    "WITH RECURSIVE chain (uri, n) AS ("
    "SELECT CAST(? AS TEXT), 0 "
    "UNION ALL SELECT (SELECT p.uri FROM post p WHERE p.reply_parent = chain.uri "
    "AND p.reply_root = ? AND p.creator = ? ORDER BY p.uri LIMIT 1), chain.n + 1 "
    "FROM chain WHERE chain.uri IS NOT NULL AND chain.n < ?) "
    "SELECT uri FROM chain WHERE uri IS NOT NULL ORDER BY n"
)
"""The OP thread: the root, its author's oldest reply to it, their oldest reply to that one,
and so on (a record key is a time, so the oldest has the lowest URI): root, root, author,
bound."""

GATE_QUERY: Final = (
    "SELECT r.uri, r.cid, r.json FROM threadgate t JOIN record r ON r.uri = t.uri "
    "WHERE t.uri = ? AND t.post_uri = ?"
)


@dataclass
class Node:
    """An item of the thread before it is sorted and flattened."""

    item: dict[str, Any]
    """`{uri, depth, value}` as the answer carries it."""
    post: dict[str, Any] | None = None
    """The postView, for items that are posts."""
    hidden: bool = False
    """An "other" reply (`getPostThreadOtherV2`)."""
    op_like: bool = False
    """The root's author likes this post (it ranks higher in `top`)."""
    parent: Node | None = None
    replies: list[Node] | None = None


@dataclass(frozen=True)
class Reply:
    """A reply that may be shown, and whether it is an "other" one."""

    entry: Post
    view: dict[str, Any]
    hidden_by_threadgate: bool
    """The root's threadgate hides it (from everyone but its author)."""
    muted: bool
    """The viewer mutes its author."""

    @property
    def other(self) -> bool:
        """Left out of the thread, for `getPostThreadOtherV2`: hidden, muted, or a pushpin."""
        return self.hidden_by_threadgate or self.muted or _pushpin(self.entry)


@dataclass
class Skeleton:
    """What a thread is built from: its posts, hydrated, and how they hang together."""

    anchor: str
    root: str
    entries: dict[str, Post]
    posts: dict[str, dict[str, Any]]
    rel: Relations
    children: dict[str, list[str]]
    op_thread: list[str]
    """The OP thread from its root, when it has more than the root."""
    blocks: set[frozenset[str]]
    """Pairs of accounts where one blocks the other."""
    op_likes: set[str]
    gate: tuple[str, str, dict[str, Any]] | None
    """The root's threadgate: (uri, cid, record)."""
    viewer: str | None
    hidden_replies: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        hidden = (self.gate[2] if self.gate else {}).get("hiddenReplies")
        self.hidden_replies = frozenset(
            u for u in (hidden if isinstance(hidden, list) else []) if isinstance(u, str)
        )

    @property
    def op(self) -> str:
        return did_of(self.root)

    def blocked_between(self, one: str, other: str) -> bool:
        return one != other and frozenset((one, other)) in self.blocks

    def reply(self, uri: str) -> Reply | None:
        """A reply, if it may be in the thread at all: it is indexed, its author shown, it is
        in this thread, and nobody blocks anybody along its branch."""
        entry, view = self.entries.get(uri), self.posts.get(uri)
        if entry is None or view is None or (entry.reply_root or uri) != self.root:
            return None
        if self.rel.blocks(entry.did) or self.blocked_between(
            entry.did, did_of(entry.reply_parent or "")
        ):
            return None
        if self.no_unauthenticated(view):
            return None
        by_gate = self.viewer != entry.did and uri in self.hidden_replies
        return Reply(entry, view, by_gate, self.rel.mutes(entry.did))

    def no_unauthenticated(self, view: dict[str, Any]) -> bool:
        """The author asks not to be shown to signed-out readers, and the reader is one."""
        labels = view["author"].get("labels") or []
        return self.viewer is None and any(
            label.get("val") == "!no-unauthenticated" for label in labels
        )


def _item(uri: str, depth: int, kind: str, **value: Any) -> dict[str, Any]:
    return {"uri": uri, "depth": depth, "value": {"$type": ITEM + kind, **value}}


def _post_item(
    uri: str,
    depth: int,
    view: dict[str, Any],
    op_thread: bool,
    allowance: float | None = None,
    more_parents: bool = False,
    hidden_by_threadgate: bool = False,
    muted: bool = False,
) -> dict[str, Any]:
    """A threadItemPost; `allowance` is how many of its replies the thread may show (None:
    none are asked for), from which `moreReplies` is estimated."""
    more = 0 if allowance is None else max(view["replyCount"] - allowance, 0)
    return _item(
        uri, depth, "threadItemPost",
        post=view, moreParents=more_parents, moreReplies=int(more), opThread=op_thread,
        hiddenByThreadgate=hidden_by_threadgate, mutedByViewer=muted,
    )  # fmt: skip


def _blocked_item(uri: str, depth: int, author: str, skeleton: Skeleton) -> dict[str, Any]:
    blocked: dict[str, Any] = {"did": author}
    if skeleton.viewer is not None:
        rel = skeleton.rel
        blocked["viewer"] = {"blockedBy": author in rel.blocked_by}
        blocking = rel.blocking.get(author) or rel.blocking_by_list.get(author)
        if blocking is not None:
            blocked["viewer"]["blocking"] = blocking
    return _item(uri, depth, "threadItemBlocked", author=blocked)


def _top(node: Node) -> float:
    assert node.post is not None
    return math.log(3 + node.post["likeCount"]) * (1.45 if node.op_like else 1.0)


def _order(a: Node, b: Node, sort: str | None) -> int:
    """The chosen order between two replies (newest first unless asked otherwise; hidden
    replies always newest first)."""
    assert a.post is not None and b.post is not None
    at, bt = str(a.post["indexedAt"]), str(b.post["indexedAt"])
    if not a.hidden and not b.hidden:
        if sort == "oldest":
            return (at > bt) - (at < bt)
        if sort == "top" and _top(a) != _top(b):
            return 1 if _top(b) > _top(a) else -1
    return (bt > at) - (bt < at)


def _comparator(skeleton: Skeleton, sort: str | None) -> Callable[[Node, Node], int]:
    """The reference's ordering of sibling replies: bumps first, in priority order (an item
    bumped up by an earlier rule is above one bumped by a later rule), then `_order`."""
    op_thread = set(skeleton.op_thread)

    def author(node: Node) -> str:
        return did_of(node.item["uri"])

    def following(node: Node) -> bool:
        assert node.post is not None
        return not node.hidden and bool(node.post["author"].get("viewer", {}).get("following"))

    bumps: list[tuple[bool, Callable[[Node], bool]]] = [
        (True, lambda n: n.item["uri"] in op_thread),
        (True, lambda n: author(n) == skeleton.op),
        (True, lambda n: author(n) == skeleton.viewer),
        (True, following),
        (False, lambda n: n.hidden and n.item["value"]["mutedByViewer"]),
        (False, lambda n: n.hidden and n.item["value"]["hiddenByThreadgate"]),
    ]

    def compare(a: Node, b: Node) -> int:
        for up, applies in bumps:
            in_a, in_b = applies(a), applies(b)
            if in_a and in_b:
                return _order(a, b, sort)
            if in_a or in_b:
                return -1 if in_a == up else 1
        return _order(a, b, sort)

    return compare


def _sort_trim(node: Node, compare: Callable[[Node, Node], int], branching: int) -> None:
    """Sort every level of replies; below the anchor, keep `branching` of each."""
    if node.replies is None:
        return
    node.replies.sort(key=functools.cmp_to_key(compare))
    if node.item["depth"] != 0:
        node.replies = node.replies[:branching]
    for reply in node.replies:
        _sort_trim(reply, compare, branching)


def _flatten(node: Node, with_self: bool = True) -> list[dict[str, Any]]:
    """Parents from the top, the node, then its replies depth first."""
    out = _flatten(node.parent) if node.parent is not None else []
    if with_self:
        out.append(node.item)
    for reply in node.replies or []:
        out.extend(_flatten(reply))
    return out


class ThreadViews(FeedViews):
    """Thread items (`app.bsky.unspecced.getPostThreadV2`, `...OtherV2`) for one request."""

    async def _skeleton(self, anchor: str, height: int, below: int, top: bool) -> Skeleton:
        lineage, below_rows = await self.db.fetch_many(
            [
                (LINEAGE_QUERY, (anchor, height)),
                (REPLIES_QUERY, (anchor, below, THREAD_REPLIES)),
            ]
        )
        uris = [anchor, *(r[0] for r in lineage), *(r[0] for r in below_rows)]
        entries = await self.post_entries(uris)
        posts = await self.posts(uris)
        anchor_entry = entries.get(anchor)
        root = (anchor_entry.reply_root if anchor_entry else None) or anchor
        op = did_of(root)
        authors = list({e.did for e in entries.values()} | {op})
        rel = await self.relations(authors)
        gate_uri = f"at://{op}/app.bsky.feed.threadgate/{root.rpartition('/')[2]}"
        chain, likes, gate = await self.db.fetch_many(
            [
                (OP_THREAD_QUERY, (root, root, op, THREAD_REPLIES)),
                (
                    "SELECT subject FROM likes WHERE creator = ? AND subject = ANY(?)",
                    (op, uris if top else []),
                ),
                (GATE_QUERY, (gate_uri, root)),
            ]
        )
        # Siblings newest first before they are sorted, as the reference lists them.
        children: dict[str, list[str]] = {}
        for (uri,) in reversed(below_rows):
            entry = entries.get(uri)
            if entry is not None and entry.reply_parent is not None and uri != anchor:
                children.setdefault(entry.reply_parent, []).append(uri)
        op_thread = [r[0] for r in chain]
        gate_row = (gate[0][0], gate[0][1], orjson.loads(gate[0][2])) if gate else None
        return Skeleton(
            anchor=anchor,
            root=root,
            entries=entries,
            posts=posts,
            rel=rel,
            children=children,
            op_thread=op_thread if len(op_thread) > 1 else [],
            blocks=await self.blocks_among(authors),
            op_likes={r[0] for r in likes},
            gate=gate_row,
            viewer=self.viewer,
        )

    async def thread_items(
        self, anchor: str, above: bool, below: int, branching: int, sort: str | None
    ) -> tuple[list[dict[str, Any]], bool, dict[str, Any] | None]:
        """The thread around `anchor`: its items, whether it has "other" replies, and the
        root's threadgateView (if it has a threadgate)."""
        height = MAX_PARENTS if above else 0
        skeleton = await self._skeleton(anchor, height, below, sort == "top")
        gate = await self._gate_view(skeleton)
        entry, view = skeleton.entries.get(anchor), skeleton.posts.get(anchor)
        if entry is None or view is None:
            return [_item(anchor, 0, "threadItemNotFound")], False, gate
        if skeleton.rel.blocks(entry.did):
            return [_blocked_item(anchor, 0, entry.did, skeleton)], False, gate
        parent, op_above = self._parent(skeleton, anchor, -1, height)
        is_op = entry.did == skeleton.op
        op_thread = (op_above and is_op) if parent is not None else is_op
        others = False
        if skeleton.no_unauthenticated(view):
            node = Node(_item(anchor, 0, "threadItemNoUnauthenticated"), parent=parent)
        else:
            replies, others = self._replies(skeleton, anchor, op_thread, 1, below, branching)
            node = Node(
                _post_item(anchor, 0, view, op_thread, allowance=math.inf),
                view,
                op_like=anchor in skeleton.op_likes,
                parent=parent,
                replies=replies,
            )
        _sort_trim(node, _comparator(skeleton, sort), branching)
        items = _flatten(node)
        if skeleton.op_thread:
            # The OP thread is known whole: each of its posts says where it stands in it.
            place = {uri: n for n, uri in enumerate(skeleton.op_thread, start=1)}
            for item in items:
                value = item["value"]
                if value["$type"] == ITEM + "threadItemPost":
                    value["opThread"] = item["uri"] in place
                    if item["uri"] in place:
                        value["opThreadPostIndex"] = place[item["uri"]]
                        value["opThreadPostCount"] = len(skeleton.op_thread)
        return items, others, gate

    async def other_replies(self, anchor: str) -> list[dict[str, Any]]:
        """The anchor's direct replies that its thread leaves out (hidden by the threadgate,
        by muted accounts, pushpins), as `getPostThreadOtherV2` lists them."""
        skeleton = await self._skeleton(anchor, 0, 1, False)
        entry, view = skeleton.entries.get(anchor), skeleton.posts.get(anchor)
        if entry is None or view is None or skeleton.rel.blocks(entry.did):
            return []
        replies = []
        for uri in skeleton.children.get(anchor, []):
            reply = skeleton.reply(uri)
            if reply is not None and reply.other:
                item = _post_item(
                    uri, 1, reply.view, False,
                    hidden_by_threadgate=reply.hidden_by_threadgate, muted=reply.muted,
                )  # fmt: skip
                replies.append(Node(item, reply.view, hidden=True))
        # The anchor itself is not an item here: only its replies are.
        node = Node({"uri": anchor, "depth": 0, "value": None}, replies=replies)
        _sort_trim(node, _comparator(skeleton, None), 0)
        return _flatten(node, with_self=False)

    def _parent(
        self, skeleton: Skeleton, child: str, depth: int, height: int
    ) -> tuple[Node | None, bool]:
        """The chain above `child` (its parent at `depth`), and whether it is all by the
        root's author from the root down."""
        if -depth > height:
            return None, False
        uri = skeleton.entries[child].reply_parent
        if uri is None:
            return None, False
        entry, view = skeleton.entries.get(uri), skeleton.posts.get(uri)
        if entry is None or view is None:
            return Node(_item(uri, depth, "threadItemNotFound")), False
        if (entry.reply_root or uri) != skeleton.root:
            return None, False  # outside the thread
        if skeleton.rel.blocks(entry.did) or skeleton.blocked_between(entry.did, did_of(child)):
            return Node(_blocked_item(uri, depth, entry.did, skeleton)), False
        above, op_above = self._parent(skeleton, uri, depth - 1, height)
        is_op = entry.did == skeleton.op
        op_thread = (op_above and is_op) if above is not None else is_op
        if skeleton.no_unauthenticated(view):
            return Node(_item(uri, depth, "threadItemNoUnauthenticated"), parent=above), op_thread
        more_parents = entry.reply_parent is not None and above is None
        item = _post_item(uri, depth, view, op_thread, more_parents=more_parents)
        return Node(item, view, op_like=uri in skeleton.op_likes, parent=above), op_thread

    def _replies(
        self,
        skeleton: Skeleton,
        parent: str,
        op_above: bool,
        depth: int,
        below: int,
        branching: int,
    ) -> tuple[list[Node] | None, bool]:
        """The replies under `parent` (at `depth`), and whether some were "other" ones."""
        if depth > below:
            return None, False
        nodes: list[Node] = []
        others = False
        for uri in skeleton.children.get(parent, []):
            reply = skeleton.reply(uri)
            if reply is None:
                continue
            if reply.other:
                others = others or depth == 1
                continue
            op_thread = op_above and reply.entry.did == skeleton.op
            replies, _ = self._replies(skeleton, uri, op_thread, depth + 1, below, branching)
            allowance = 0 if depth == below else branching
            item = _post_item(uri, depth, reply.view, op_thread, allowance=allowance)
            nodes.append(Node(item, reply.view, op_like=uri in skeleton.op_likes, replies=replies))
        return nodes, others

    async def _gate_view(self, skeleton: Skeleton) -> dict[str, Any] | None:
        """The root's threadgateView: the record, and the lists its rules name."""
        if skeleton.gate is None:
            return None
        uri, cid, record = skeleton.gate
        rules = record.get("allow")
        lists = [
            rule["list"]
            for rule in (rules if isinstance(rules, list) else [])
            if isinstance(rule, dict)
            and rule.get("$type") == "app.bsky.feed.threadgate#listRule"
            and isinstance(rule.get("list"), str)
        ]
        views = await self.list_basics(lists) if lists else {}
        return {
            "uri": uri,
            "cid": cid,
            "record": record,
            "lists": [views[u] for u in lists if u in views],
        }


def _pushpin(entry: Post) -> bool:
    """A reply that is only a pushpin: someone marking the thread for later, not a reply."""
    text = entry.record.get("text")
    return isinstance(text, str) and text.strip() == "\N{PUSHPIN}"
