"""Official MST vectors: key heights, common prefixes, and sync 1.1 commit proofs."""

from __future__ import annotations

from typing import Any

import pytest

from strata.core import cbor
from strata.core.car import read_car, write_car
from strata.core.cid import CID
from strata.core.mst import MST, common_prefix_len, key_height
from strata.core.mst.diff import diff
from strata.core.mst.proof import covering_proof, invert
from tests.conformance.conftest import interop_json

HEIGHTS = interop_json("mst", "key_heights.json")
PREFIXES = interop_json("mst", "common_prefix.json")
PROOFS = interop_json("firehose", "commit-proof-fixtures.json")


@pytest.mark.parametrize("case", HEIGHTS, ids=lambda c: repr(c["key"]))
def test_key_height(case: dict[str, Any]) -> None:
    assert key_height(case["key"]) == case["height"]


@pytest.mark.parametrize("case", PREFIXES, ids=lambda c: f"{c['left']!r}-{c['right']!r}")
def test_common_prefix(case: dict[str, Any]) -> None:
    assert common_prefix_len(case["left"].encode(), case["right"].encode()) == case["len"]


@pytest.mark.parametrize("case", PROOFS, ids=lambda c: c["comment"])
def test_commit_proof(case: dict[str, Any]) -> None:
    leaf = CID.from_str(case["leafValue"])
    before = MST.build((k, leaf) for k in case["keys"])
    incremental = MST.empty()
    for key in case["keys"]:
        incremental = incremental.put(key, leaf)
    assert str(before.root) == str(incremental.root) == case["rootBeforeCommit"]

    after = before
    for key in case["adds"]:
        after = after.put(key, leaf)
    for key in case["dels"]:
        after = after.delete(key)
    assert str(after.root) == case["rootAfterCommit"]

    # The blocks a commit carries are the reference PDS's covering proofs, exactly.
    ops = diff(before, after).ops
    proof: set[CID] = set()
    for op in ops:
        proof |= covering_proof(after, op.path)
    assert sorted(map(str, proof)) == sorted(case["blocksInProof"])

    # Those blocks alone invert the commit, travelling through a CAR like a firehose event.
    blocks = {node.cid: node.block for node in after.nodes() if node.cid in proof}
    root, carried = read_car(write_car([after.root], blocks.items()))
    assert str(invert(MST.load(carried, root), ops).root) == case["rootBeforeCommit"]
    assert cbor.decode(carried[root]) is not None
