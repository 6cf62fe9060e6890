"""Proofs over a tree (sync 1.1): which nodes show a key present or absent, and inversion.

`proof_nodes` are the nodes of a tree that prove each changed key present or absent.
`covering_proof` adds the paths to a key's neighbours, as the reference PDS sends them with every
commit. `inversion_proof_nodes` are the nodes a verifier needs to undo a commit's operations on the
new tree and arrive at the old root ("MST operation inversion"), found by doing that inversion
from blocks alone and recording every block it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from strata.core.cid import CID
from strata.core.errors import MSTError
from strata.core.mst.diff import RecordOp
from strata.core.mst.node import Node, Pointer, key_height
from strata.core.mst.tree import MST, entry_index, gap


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
        i = entry_index(entries, key)
        if i < len(entries) and entries[i].key == key:
            break
        node = tree.loader.load(gap(node, i))
        layer -= 1
    return out


def proof_nodes(tree: MST, keys: Iterable[str]) -> set[CID]:
    """Nodes proving each key's presence or absence in `tree`."""
    out: set[CID] = set()
    for key in keys:
        out.update(path_nodes(tree, key))
    return out


class _RecordingStore(Mapping[CID, bytes]):
    """A read-only view over block maps, searched in order, that notes every block fetched."""

    def __init__(self, *layers: Mapping[CID, bytes]) -> None:
        self._layers = layers
        self.fetched: set[CID] = set()

    def __getitem__(self, cid: CID) -> bytes:
        for layer in self._layers:
            block = layer.get(cid)
            if block is not None:
                self.fetched.add(cid)
                return block
        raise KeyError(cid)

    def __iter__(self) -> Iterator[CID]:
        return iter({cid for layer in self._layers for cid in layer})

    def __len__(self) -> int:
        return sum(1 for _ in self)


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
    recorder = _RecordingStore(dict(tree.new_blocks()), tree.loader.store)
    invert(MST.load(recorder, tree.root), ops)
    return recorder.fetched


def _spine(tree: MST, ptr: Pointer, rightmost: bool, out: set[CID]) -> None:
    """Add the nodes down the left or right edge of a subtree."""
    node = tree.loader.load(ptr)
    while node is not None:
        out.add(node.cid)
        ptr = node.entries[-1].right if rightmost and node.entries else node.left
        node = tree.loader.load(ptr)


def covering_proof(tree: MST, key: str) -> set[CID]:
    """The nodes proving `key` and its immediate neighbours, as the reference PDS computes them.

    That is the search path down the gaps that hold `key`, and where the key is present, the
    right edge of the subtree before it and the left edge of the subtree after it.
    """
    out: set[CID] = set()
    node: Node | None = tree.root_node
    while node is not None:
        out.add(node.cid)
        entries = node.entries
        i = entry_index(entries, key)
        if i < len(entries) and entries[i].key == key:
            _spine(tree, gap(node, i), True, out)
            _spine(tree, entries[i].right, False, out)
            break
        node = tree.loader.load(gap(node, i))
    return out
