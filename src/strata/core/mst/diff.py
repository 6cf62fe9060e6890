"""Differences between two trees, and the proofs a commit carries (sync 1.1).

`diff` finds the nodes and records that changed. `proof_nodes` are the nodes of the new tree that
prove each changed key present or absent. `inversion_proof_nodes` are the nodes a verifier needs
to undo a commit's operations on the new tree and arrive at the old root ("MST operation
inversion"), found by doing that inversion and recording every node it reads.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from strata.core.cid import CID
from strata.core.errors import MSTError
from strata.core.mst.node import Node, key_height
from strata.core.mst.tree import MST, NodeLoader, _gap, _index


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
    for ptr in (node.left, *(e.right for e in node.entries)):
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


def path_nodes(tree: MST, key: str) -> list[CID]:
    """The nodes from the root down to where `key` is, or would be: its (non-)inclusion proof.

    An absent key's path goes one node below the key's own layer, into the subtree that inserting
    the key would split: that node is what pins the neighbours on either side of it.
    """
    height = key_height(key)
    layer = tree.layer
    out: list[CID] = []
    node: Node | None = tree.root_node
    while node is not None:
        out.append(node.cid)
        if height > layer:
            break
        entries = node.entries
        i = _index(entries, key)
        if i < len(entries) and entries[i].key == key:
            break
        node = tree.loader.load(_gap(node, i))
        layer -= 1
    return out


def proof_nodes(tree: MST, keys: Iterable[str]) -> set[CID]:
    """Nodes proving each key's presence or absence in `tree`."""
    out: set[CID] = set()
    for key in keys:
        out.update(path_nodes(tree, key))
    return out


class _RecordingStore(Mapping[CID, bytes]):
    """A read-through view of a block store that notes every block fetched."""

    def __init__(self, inner: Mapping[CID, bytes]) -> None:
        self._inner = inner
        self.fetched: set[CID] = set()

    def __getitem__(self, cid: CID) -> bytes:
        block = self._inner[cid]
        self.fetched.add(cid)
        return block

    def __iter__(self) -> Iterator[CID]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


def invert(tree: MST, ops: Iterable[RecordOp]) -> MST:
    """Undo `ops` on the tree they produced, checking each against it first.

    Raises `MSTError` when an op does not match the tree or a needed block is missing.
    """
    ops = list(ops)
    for op in ops:
        if tree.get(op.path) != op.new:
            raise MSTError(f"operation on {op.path} does not match the tree")
    for op in reversed(ops):
        tree = tree.delete(op.path) if op.old is None else tree.put(op.path, op.old)
    return tree


def inversion_proof_nodes(tree: MST, ops: Iterable[RecordOp]) -> set[CID]:
    """Nodes of `tree` that `invert(tree, ops)` reads: what a commit must carry for sync 1.1."""
    ops = list(ops)
    if not ops:
        return set()
    # Replay from blocks only, so nodes made by the inversion itself are not counted.
    recorder = _RecordingStore(ChainMap(dict(tree.new_blocks()), tree.loader.store))
    invert(MST.load(recorder, tree.root), ops)
    return recorder.fetched
