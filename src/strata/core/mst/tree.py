"""The Merkle Search Tree: a persistent (copy-on-write) ordered map from repo paths to CIDs.

Every change returns a new `MST` that shares unchanged subtrees with the old one, so a repository
can keep the tree before and after a commit side by side to diff them. Nodes are loaded lazily
from a block store; a block that is needed and missing raises `MSTError`, which is what makes a
partial tree (a commit's proof blocks) usable for verification.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping

from strata.core.cid import CID
from strata.core.errors import MSTError
from strata.core.mst.node import Entry, Node, Pointer, decode_node, key_height, validate_key

BlockMap = Mapping[CID, bytes]


class NodeLoader:
    """Decodes nodes from a block store on first use and keeps them for the trees that share it."""

    __slots__ = ("_nodes", "store")

    def __init__(self, store: BlockMap) -> None:
        self.store = store
        self._nodes: dict[CID, Node] = {}

    def load(self, ptr: Pointer) -> Node | None:
        """The node a pointer refers to, decoding it from the store when needed."""
        if ptr is None or isinstance(ptr, Node):
            return ptr
        node = self._nodes.get(ptr)
        if node is None:
            block = self.store.get(ptr)
            if block is None:
                raise MSTError(f"MST block {ptr} is missing")
            node = decode_node(ptr, block)
            self._nodes[ptr] = node
        return node


def entry_index(entries: list[Entry], key: str) -> int:
    """Position of `key` among a node's entries, or where it would be inserted."""
    return bisect_left(entries, key, key=lambda e: e.key)


def _with_gap(node: Node, i: int, ptr: Pointer, entries: list[Entry] | None = None) -> Node:
    """A copy of `node` whose gap `i` (0 = left, else right of entry i-1) points at `ptr`."""
    entries = list(node.entries if entries is None else entries)
    if i == 0:
        return Node(ptr, entries)
    entries[i - 1] = entries[i - 1]._replace(right=ptr)
    return Node(node.left, entries)


def gap(node: Node, i: int) -> Pointer:
    """The subtree before entry `i` (the node's left subtree for i = 0)."""
    return node.left if i == 0 else node.entries[i - 1].right


def _nonempty(node: Node) -> Node | None:
    return None if node.is_empty else node


class MST:
    """An immutable MST; `put` and `delete` return new trees."""

    __slots__ = ("_layer", "_loader", "_root")

    def __init__(self, loader: NodeLoader, root: Node | None, layer: int) -> None:
        self._loader = loader
        self._root = root
        self._layer = layer

    @classmethod
    def empty(cls, store: BlockMap | None = None) -> MST:
        """An empty tree over a block store (or over nothing)."""
        return cls(NodeLoader(store if store is not None else {}), None, 0)

    @classmethod
    def load(cls, store: BlockMap, root: CID) -> MST:
        """The tree whose root node is `root` in `store`; nodes load as they are visited."""
        loader = NodeLoader(store)
        node = loader.load(root)
        assert node is not None
        if node.is_empty:
            return cls(loader, None, 0)
        return cls(loader, node, _layer_of(loader, node))

    @classmethod
    def build(cls, items: Iterable[tuple[str, CID]], store: BlockMap | None = None) -> MST:
        """Build a tree from (key, CID) pairs in one pass; keys must be unique."""
        pairs = sorted(items)
        for i in range(1, len(pairs)):
            if pairs[i][0] == pairs[i - 1][0]:
                raise MSTError(f"duplicate MST key {pairs[i][0]!r}")
        keys = [validate_key(k) for k, _ in pairs]
        heights = [key_height(k) for k in keys]
        loader = NodeLoader(store if store is not None else {})
        if not pairs:
            return cls(loader, None, 0)
        top = max(heights)
        return cls(loader, _build(pairs, heights, 0, len(pairs), top), top)

    @property
    def root(self) -> CID:
        """The CID of the root node (the empty tree has one too)."""
        return (self._root or Node(None, [])).cid

    @property
    def root_node(self) -> Node:
        """The root node, for code that walks or diffs trees."""
        return self._root or Node(None, [])

    @property
    def layer(self) -> int:
        """The layer of the root node."""
        return self._layer

    @property
    def loader(self) -> NodeLoader:
        """The loader this tree reads nodes through."""
        return self._loader

    def get(self, key: str) -> CID | None:
        """The value stored under `key`, or None."""
        node = self._root
        while node is not None:
            entries = node.entries
            i = entry_index(entries, key)
            if i < len(entries) and entries[i].key == key:
                return entries[i].value
            node = self._loader.load(gap(node, i))
        return None

    def put(self, key: str, value: CID) -> MST:
        """A tree with `key` set to `value` (added or replaced)."""
        validate_key(key)
        height = key_height(key)
        root = self._root
        if root is None:
            return MST(self._loader, self._chain(height, height, key, value), height)
        if height > self._layer:
            left, right = self._split(root, self._layer, key)
            new_root = Node(
                self._wrap(left, self._layer, height - 1),
                [Entry(key, value, self._wrap(right, self._layer, height - 1))],
            )
            return MST(self._loader, new_root, height)
        return MST(self._loader, self._put(root, self._layer, key, height, value), self._layer)

    def delete(self, key: str) -> MST:
        """A tree without `key`; raises `MSTError` when the key is absent."""
        if self._root is None:
            raise MSTError(f"MST key {key!r} not found")
        root = self._delete(self._root, self._layer, key, key_height(key))
        layer = self._layer
        # Trim: a root with no entries of its own is replaced by its only subtree.
        while root is not None and not root.entries:
            root = self._loader.load(root.left)
            layer -= 1
        return MST(self._loader, root, max(layer, 0))

    def items(self) -> Iterator[tuple[str, CID]]:
        """Every (key, value) in key order."""
        return self._walk(self._root)

    def items_from(self, start: str) -> Iterator[tuple[str, CID]]:
        """Every (key, value) with key >= start, in key order."""
        return self._walk(self._root, start)

    def nodes(self) -> Iterator[Node]:
        """Every node of the tree (the root first), loading each."""
        root = self.root_node
        stack = [root]
        while stack:
            node = stack.pop()
            yield node
            for ptr in node.pointers():
                child = self._loader.load(ptr)
                if child is not None:
                    stack.append(child)

    def new_blocks(self) -> Iterator[tuple[CID, bytes]]:
        """Blocks of nodes made in memory that the loader's store does not hold yet."""
        store = self._loader.store
        stack = [self.root_node]
        while stack:
            node = stack.pop()
            if node.cid in store:
                continue
            yield node.cid, node.block
            for ptr in node.pointers():
                if isinstance(ptr, Node):
                    stack.append(ptr)

    def check(self) -> int:
        """Walk the whole tree checking the MST's invariants; return the number of keys.

        Raises `MSTError` naming the first problem: a key at the wrong layer, keys out of order,
        an empty inner node, an untrimmed root, or a missing block.
        """
        root = self._root
        if root is None:
            return 0
        if not root.entries:
            raise MSTError("MST root has no keys of its own: the tree is not trimmed")
        last = [""]

        def visit(node: Node, layer: int) -> int:
            if node.is_empty:
                raise MSTError(f"MST node {node.cid} is empty")
            count = 0
            for ptr, entry in zip(node.pointers(), (*node.entries, None), strict=True):
                child = self._loader.load(ptr)
                if child is not None:
                    if layer == 0:
                        raise MSTError(f"MST node {node.cid} at layer 0 has a subtree")
                    count += visit(child, layer - 1)
                if entry is not None:
                    validate_key(entry.key)
                    if key_height(entry.key) != layer:
                        raise MSTError(
                            f"MST key {entry.key!r} is at layer {layer}, "
                            f"not its height {key_height(entry.key)}"
                        )
                    if entry.key <= last[0]:
                        raise MSTError(f"MST key {entry.key!r} is out of order")
                    last[0] = entry.key
                    count += 1
            return count

        return visit(root, self._layer)

    def _walk(self, ptr: Pointer, start: str = "") -> Iterator[tuple[str, CID]]:
        node = self._loader.load(ptr)
        if node is None:
            return
        entries = node.entries
        i = entry_index(entries, start) if start else 0
        yield from self._walk(gap(node, i), start)
        for entry in entries[i:]:
            yield entry.key, entry.value
            yield from self._walk(entry.right)

    def _chain(self, top: int, height: int, key: str, value: CID) -> Node:
        """A new subtree at layer `top` holding one key of `height`."""
        node = Node(None, [Entry(key, value, None)])
        for _ in range(height, top):
            node = Node(node, [])
        return node

    def _wrap(self, node: Node | None, layer: int, top: int) -> Node | None:
        """Raise a subtree from `layer` to `top` with entry-less parents."""
        if node is None:
            return None
        for _ in range(layer, top):
            node = Node(node, [])
        return node

    def _put(self, node: Node, layer: int, key: str, height: int, value: CID) -> Node:
        entries = node.entries
        i = entry_index(entries, key)
        if height == layer:
            if i < len(entries) and entries[i].key == key:
                updated = list(entries)
                updated[i] = entries[i]._replace(value=value)
                return Node(node.left, updated)
            left, right = self._split(self._loader.load(gap(node, i)), layer - 1, key)
            updated = [*entries[:i], Entry(key, value, right), *entries[i:]]
            return _with_gap(node, i, left, updated)
        child = self._loader.load(gap(node, i))
        if child is None:
            new_child = self._chain(layer - 1, height, key, value)
        else:
            new_child = self._put(child, layer - 1, key, height, value)
        return _with_gap(node, i, new_child)

    def _split(self, node: Node | None, layer: int, key: str) -> tuple[Node | None, Node | None]:
        """Split a subtree into the keys below and above `key` (which it must not hold)."""
        if node is None:
            return None, None
        entries = node.entries
        i = entry_index(entries, key)
        if i < len(entries) and entries[i].key == key:
            raise MSTError(f"MST key {key!r} is already present")
        low, high = self._split(self._loader.load(gap(node, i)), layer - 1, key)
        left = _with_gap(node, i, low, entries[:i]) if i else Node(low, [])
        right = Node(high, list(entries[i:]))
        return _nonempty(left), _nonempty(right)

    def _delete(self, node: Node, layer: int, key: str, height: int) -> Node | None:
        entries = node.entries
        i = entry_index(entries, key)
        if height == layer:
            if i >= len(entries) or entries[i].key != key:
                raise MSTError(f"MST key {key!r} not found")
            merged = self._merge(gap(node, i), entries[i].right)
            updated = [*entries[:i], *entries[i + 1 :]]
            return _nonempty(_with_gap(node, i, merged, updated))
        if height > layer:
            raise MSTError(f"MST key {key!r} not found")
        child = self._loader.load(gap(node, i))
        if child is None:
            raise MSTError(f"MST key {key!r} not found")
        return _nonempty(_with_gap(node, i, self._delete(child, layer - 1, key, height)))

    def _merge(self, a_ptr: Pointer, b_ptr: Pointer) -> Pointer:
        """Join two adjacent subtrees of the same layer (every key of a below every key of b)."""
        if a_ptr is None:
            return b_ptr
        if b_ptr is None:
            return a_ptr
        a = self._loader.load(a_ptr)
        b = self._loader.load(b_ptr)
        assert a is not None and b is not None
        if not a.entries:
            return Node(self._merge(a.left, b.left), list(b.entries))
        mid = self._merge(a.entries[-1].right, b.left)
        last = a.entries[-1]._replace(right=mid)
        return Node(a.left, [*a.entries[:-1], last, *b.entries])


def _layer_of(loader: NodeLoader, node: Node) -> int:
    """A node's layer: its keys' height, or one above its left subtree's when it has no keys."""
    depth = 0
    current: Node | None = node
    while current is not None:
        if current.entries:
            return key_height(current.entries[0].key) + depth
        current = loader.load(current.left)
        depth += 1
    return 0


def _build(
    pairs: list[tuple[str, CID]], heights: list[int], lo: int, hi: int, layer: int
) -> Node | None:
    """The subtree at `layer` holding pairs[lo:hi], all of height <= layer."""
    if lo >= hi:
        return None
    if layer == 0:
        return Node(None, [Entry(k, v, None) for k, v in pairs[lo:hi]])
    entries: list[Entry] = []
    left: Node | None = None
    start = lo
    for i in range(lo, hi):
        if heights[i] == layer:
            sub = _build(pairs, heights, start, i, layer - 1)
            if entries:
                entries[-1] = entries[-1]._replace(right=sub)
            else:
                left = sub
            key, value = pairs[i]
            entries.append(Entry(key, value, None))
            start = i + 1
    sub = _build(pairs, heights, start, hi, layer - 1)
    if entries:
        entries[-1] = entries[-1]._replace(right=sub)
    else:
        left = sub
    return Node(left, entries)
