"""Differences between two trees: the nodes and the records that changed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from strata.core.cid import CID
from strata.core.mst.node import Node
from strata.core.mst.tree import MST, NodeLoader


@dataclass(frozen=True, slots=True)
class RecordOp:
    """A change to one key: created (old is None), deleted (new is None) or updated."""

    path: str
    old: CID | None
    new: CID | None


@dataclass(slots=True)
class Diff:
    """What changed between two trees."""

    created_nodes: set[CID] = field(default_factory=set)
    deleted_nodes: set[CID] = field(default_factory=set)
    ops: list[RecordOp] = field(default_factory=list)


def _children(loader: NodeLoader, node: Node) -> Iterable[Node]:
    for ptr in node.pointers():
        child = loader.load(ptr)
        if child is not None:
            yield child


def diff(old: MST, new: MST) -> Diff:
    """Nodes and records that differ between `old` and `new`.

    Walks both trees a layer at a time from the top: a node whose CID appears on both sides at
    the same layer is an identical subtree and is not descended into, so the cost follows the
    size of the change, not of the trees.
    """
    result = Diff()
    old_values: dict[str, CID] = {}
    new_values: dict[str, CID] = {}
    layer = max(old.layer, new.layer)
    level_old: dict[CID, Node] = {}
    level_new: dict[CID, Node] = {}
    while layer >= 0:
        if layer == old.layer:
            level_old[old.root] = old.root_node
        if layer == new.layer:
            level_new[new.root] = new.root_node
        shared = level_old.keys() & level_new.keys()
        next_old: dict[CID, Node] = {}
        next_new: dict[CID, Node] = {}
        for level, loader, nodes, values, following in (
            (level_old, old.loader, result.deleted_nodes, old_values, next_old),
            (level_new, new.loader, result.created_nodes, new_values, next_new),
        ):
            for cid, node in level.items():
                if cid in shared:
                    continue
                nodes.add(cid)
                for entry in node.entries:
                    values[entry.key] = entry.value
                for child in _children(loader, node):
                    following[child.cid] = child
        level_old, level_new = next_old, next_new
        layer -= 1
    for path in sorted(old_values.keys() | new_values.keys()):
        before, after = old_values.get(path), new_values.get(path)
        if before != after:
            result.ops.append(RecordOp(path, before, after))
    return result
