"""MST nodes: keys, key heights, and the node's DAG-CBOR form.

A node is `{l: CID|null, e: [{p, k, v, t}]}`: a left subtree, then entries in key order, each
with its value (a record CID) and the subtree to its right. Keys are prefix-compressed against the
previous key in the same node. In memory a subtree pointer is a `Node` (built or changed here) or
a `CID` (not loaded yet), so a tree read from storage is only decoded where it is visited.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, NamedTuple

from strata.core import cbor
from strata.core.cid import CID
from strata.core.errors import DecodeError, MSTError

MAX_KEY_BYTES: Final = 1024
_KEY_RE: Final = re.compile(r"[a-zA-Z0-9_~\-:.]+/[a-zA-Z0-9_~\-:.]+")


def key_height(key: str) -> int:
    """The layer of a key: leading zero bits of sha256(key), counted two bits at a time."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
    return (256 - digest.bit_length()) // 2


def common_prefix_len(a: bytes, b: bytes) -> int:
    """Length of the common prefix of two byte strings."""
    n = min(len(a), len(b))
    # One XOR of the two as integers instead of a loop over bytes: the highest differing bit
    # says where they part.
    differ = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n - (differ.bit_length() + 7) // 8


def validate_key(key: str) -> str:
    """Check that a key is a repository path `collection/rkey` of allowed characters."""
    if len(key) > MAX_KEY_BYTES or not _KEY_RE.fullmatch(key):
        raise MSTError(f"invalid MST key {key[:100]!r}: expected collection/rkey")
    return key


class Entry(NamedTuple):
    """One key in a node, its value, and the subtree holding the keys between it and the next."""

    key: str
    value: CID
    right: Pointer


class Node:
    """An MST node. Immutable once built; its block and CID are computed once, on demand."""

    __slots__ = ("_block", "_cid", "entries", "left")

    def __init__(
        self,
        left: Pointer,
        entries: list[Entry],
        cid: CID | None = None,
        block: bytes | None = None,
    ) -> None:
        self.left = left
        self.entries = entries
        self._cid = cid
        self._block = block

    @property
    def is_empty(self) -> bool:
        """A node with no entries and no subtree: only valid as the root of an empty tree."""
        return not self.entries and self.left is None

    @property
    def block(self) -> bytes:
        """The node's DAG-CBOR encoding."""
        if self._block is None:
            self._block = encode_node(self)
        return self._block

    @property
    def cid(self) -> CID:
        """The node's CID."""
        if self._cid is None:
            self._cid = CID.dag_cbor(self.block)
        return self._cid

    def pointers(self) -> tuple[Pointer, ...]:
        """The node's subtree pointers in key order: its left subtree, then each entry's right."""
        return (self.left, *(e.right for e in self.entries))

    def keys(self) -> list[str]:
        """The node's own keys, in order."""
        return [e.key for e in self.entries]


Pointer = Node | CID | None


def pointer_cid(ptr: Pointer) -> CID | None:
    """The CID a subtree pointer refers to."""
    if ptr is None or isinstance(ptr, CID):
        return ptr
    return ptr.cid


def encode_node(node: Node) -> bytes:
    """Encode a node as canonical DAG-CBOR, with maximal prefix compression."""
    out = []
    prev = b""
    for key, value, right in node.entries:
        kb = key.encode()
        p = common_prefix_len(prev, kb)
        out.append({"p": p, "k": kb[p:], "v": value, "t": pointer_cid(right)})
        prev = kb
    return cbor.encode({"l": pointer_cid(node.left), "e": out})


def decode_node(cid: CID, block: bytes) -> Node:
    """Decode and check the shape of a stored node block."""
    try:
        data = cbor.decode(block)
    except DecodeError as exc:
        raise MSTError(f"MST node {cid} is not valid DAG-CBOR: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"l", "e"}:
        raise MSTError(f"MST node {cid} must be a map with exactly the keys l and e")
    left = data["l"]
    raw_entries = data["e"]
    if (left is not None and not isinstance(left, CID)) or not isinstance(raw_entries, list):
        raise MSTError(f"MST node {cid} has a malformed l or e")
    entries: list[Entry] = []
    prev = b""
    for raw in raw_entries:
        if not isinstance(raw, dict) or len(raw) != 4:
            raise MSTError(f"MST node {cid} has a malformed entry")
        p, k, v, t = raw.get("p"), raw.get("k"), raw.get("v"), raw.get("t")
        if (
            not isinstance(p, int)
            or isinstance(p, bool)
            or not isinstance(k, bytes)
            or not isinstance(v, CID)
            or (t is not None and not isinstance(t, CID))
        ):
            raise MSTError(f"MST node {cid} has an entry of the wrong types")
        if p < 0 or p > len(prev):
            raise MSTError(f"MST node {cid} has an entry prefix longer than the previous key")
        kb = prev[:p] + k
        if kb <= prev and entries:
            raise MSTError(f"MST node {cid} has keys out of order")
        try:
            key = kb.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MSTError(f"MST node {cid} has a key that is not ASCII") from exc
        entries.append(Entry(key, v, t))
        prev = kb
    return Node(left, entries, cid=cid, block=block)
