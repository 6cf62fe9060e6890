"""The community MST diff suite: 16,384 diffs between every pair of 128 subset-trees.

Each case checks created and deleted nodes, record ops, the (non-)inclusion proof nodes and the
nodes needed to invert the diff ("inductive proof"). The suite is not authoritative; where it and
the official vectors disagree the official side wins (none do at present).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from strata.core.car import read_car
from strata.core.cid import CID
from strata.core.mst import MST
from strata.core.mst.diff import diff
from strata.core.mst.proof import inversion_proof_nodes, invert, proof_nodes
from tests.conformance.conftest import vector_path

SUITE = vector_path("mst-test-suite")
GROUP = 512
CASES = sorted(SUITE.glob("tests/**/*.json")) if SUITE else []
BATCHES = [CASES[i : i + GROUP] for i in range(0, len(CASES), GROUP)]


@cache
def _tree(car: str) -> tuple[CID, dict[CID, bytes]]:
    assert SUITE is not None
    return read_car((SUITE / car).read_bytes())


def _names(cids: set[CID]) -> list[str]:
    return sorted(str(c) for c in cids)


def _check(path: Path) -> None:
    case = json.loads(path.read_text())
    assert case["$type"] == "mst-diff"
    want = case["results"]
    a = MST.load(*reversed(_tree(case["inputs"]["mst_a"])))
    b = MST.load(*reversed(_tree(case["inputs"]["mst_b"])))
    d = diff(a, b)
    assert _names(d.created_nodes) == want["created_nodes"]
    assert _names(d.deleted_nodes) == want["deleted_nodes"]
    ops = [
        {
            "rpath": op.path,
            "old_value": op.old and str(op.old),
            "new_value": op.new and str(op.new),
        }
        for op in d.ops
    ]
    assert ops == want["record_ops"]
    assert _names(proof_nodes(b, [op.path for op in d.ops])) == want["proof_nodes"]
    inductive = inversion_proof_nodes(b, d.ops)
    assert _names(inductive) == want["inductive_proof_nodes"]
    if d.ops:
        blocks = _tree(case["inputs"]["mst_b"])[1]
        partial = {cid: blocks[cid] for cid in inductive}
        assert invert(MST.load(partial, b.root), d.ops).root == a.root


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: b[0].stem)
def test_mst_diff_suite(batch: list[Path]) -> None:
    failures = []
    for path in batch:
        try:
            _check(path)
        except AssertionError as exc:
            failures.append(f"{path.name}: {exc}")
    assert not failures, "\n".join(failures[:5])
