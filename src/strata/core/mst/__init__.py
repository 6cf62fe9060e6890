"""Merkle Search Tree: the repository's ordered, content-addressed map of records."""

from strata.core.mst.node import Entry, Node, common_prefix_len, key_height, validate_key
from strata.core.mst.tree import MST, NodeLoader

__all__ = ["MST", "Entry", "Node", "NodeLoader", "common_prefix_len", "key_height", "validate_key"]
