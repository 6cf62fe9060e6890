"""The Merkle Search Tree: a model-based check of puts and deletes, diffs, proofs and inversion."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.cid import CID
from strata.core.errors import MSTError
from strata.core.mst import MST, Entry, Node, NodeLoader, key_height, validate_key
from strata.core.mst.diff import RecordOp, diff
from strata.core.mst.node import decode_node
from strata.core.mst.proof import (
    covering_proof,
    inversion_proof_nodes,
    invert,
    path_nodes,
    proof_nodes,
)
from strata.core.syntax import tid_from_parts

# A small key space with keys of several heights (0 to 4), so trees have a few layers.
TID_KEYS = [
    f"app.bsky.feed.post/{tid_from_parts(1_700_000_000_000_000 + i * 7919, i % 1024)}"
    for i in range(40)
]
SHORT_KEYS = [f"c/{n}" for n in range(30)] + ["c/53", "c/194", "c/305"]
KEYS = TID_KEYS + SHORT_KEYS
VALUES = [cbor.cid_of({"n": n}) for n in range(8)]

keys = st.sampled_from(KEYS)
cid_values = st.sampled_from(VALUES)
mappings = st.dictionaries(keys, cid_values, max_size=45)
# An op is (key, value) to put or (key, None) to delete.
op_lists = st.lists(st.tuples(keys, st.one_of(st.none(), cid_values)), max_size=60)

SETTINGS = settings(max_examples=150, deadline=None)


def key_of_height(height: int, prefix: str = "k/") -> str:
    n = 0
    while key_height(f"{prefix}{n}") != height:
        n += 1
    return f"{prefix}{n}"


def blocks_of(*trees: MST) -> dict[CID, bytes]:
    out: dict[CID, bytes] = {}
    for tree in trees:
        for node in tree.nodes():
            out[node.cid] = node.block
    return out


def stored(mapping: dict[str, CID]) -> tuple[MST, dict[CID, bytes]]:
    """A tree of `mapping` read back lazily from a block store holding exactly its nodes."""
    built = MST.build(mapping.items())
    store = blocks_of(built)
    return MST.load(store, built.root), store


def apply_ops(tree: MST, model: dict[str, CID], ops: list[tuple[str, CID | None]]) -> MST:
    for key, value in ops:
        if value is not None:
            tree = tree.put(key, value)
            model[key] = value
        elif key in model:
            tree = tree.delete(key)
            del model[key]
        else:
            before = tree.root
            with pytest.raises(MSTError):
                tree.delete(key)
            assert tree.root == before
    return tree


def assert_matches(tree: MST, model: dict[str, CID]) -> None:
    assert tree.root == MST.build(model.items()).root
    assert list(tree.items()) == sorted(model.items())
    assert tree.check() == len(model)
    for key in KEYS[::7]:
        assert tree.get(key) == model.get(key)


def proven_get(tree: MST, key: str) -> CID | None:
    """A lookup that, like a proof verifier, stops at the key's own layer."""
    height = key_height(key)
    layer = tree.layer
    node: Node | None = tree.root_node
    while node is not None and height <= layer:
        for entry in node.entries:
            if entry.key == key:
                return entry.value
        if height == layer:
            return None
        keys_before = [e for e in node.entries if e.key < key]
        node = tree.loader.load(keys_before[-1].right if keys_before else node.left)
        layer -= 1
    return None


def expected_ops(a: dict[str, CID], b: dict[str, CID]) -> list[RecordOp]:
    return [
        RecordOp(path, a.get(path), b.get(path))
        for path in sorted(a.keys() | b.keys())
        if a.get(path) != b.get(path)
    ]


# --- puts and deletes against a model ----------------------------------------------------------


@given(op_lists)
@SETTINGS
def test_ops_from_empty_match_build(ops: list[tuple[str, CID | None]]) -> None:
    model: dict[str, CID] = {}
    tree = apply_ops(MST.empty(), model, ops)
    assert_matches(tree, model)


@given(mappings, op_lists)
@SETTINGS
def test_ops_on_a_stored_tree_match_build(
    initial: dict[str, CID], ops: list[tuple[str, CID | None]]
) -> None:
    tree, store = stored(initial)
    model = dict(initial)
    result = apply_ops(tree, model, ops)
    assert_matches(result, model)
    # The old tree is unchanged (copy-on-write), and the new one can be stored and reloaded.
    assert list(tree.items()) == sorted(initial.items())
    store.update(result.new_blocks())
    reloaded = MST.load(store, result.root)
    assert_matches(reloaded, model)
    assert dict(reloaded.new_blocks()) == {}


@given(mappings, st.randoms(use_true_random=False))
@SETTINGS
def test_insertion_order_does_not_matter(mapping: dict[str, CID], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    tree = MST.empty()
    for key, value in items:
        tree = tree.put(key, value)
    built = MST.build(mapping.items())
    assert tree.root == built.root
    assert tree.layer == built.layer
    # Deleting everything, in another order, leaves the empty tree.
    rnd.shuffle(items)
    for key, _ in items:
        tree = tree.delete(key)
    assert tree.root == MST.empty().root
    assert tree.check() == 0


@given(mappings, keys)
@SETTINGS
def test_items_from(mapping: dict[str, CID], start: str) -> None:
    tree, _ = stored(mapping)
    assert list(tree.items_from(start)) == sorted((k, v) for k, v in mapping.items() if k >= start)


def test_known_answers() -> None:
    assert str(MST.empty().root) == "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    assert key_height("2653ae71") == 0
    assert key_height("blue") == 1
    assert key_height("app.bsky.feed.post/454397e440ec") == 4
    assert key_height("app.bsky.feed.post/9adeb165882c") == 8


def test_put_replaces_value_and_same_value_is_a_no_op() -> None:
    tree = MST.build([(k, VALUES[0]) for k in KEYS[:20]])
    same = tree.put(KEYS[3], VALUES[0])
    assert same.root == tree.root
    changed = tree.put(KEYS[3], VALUES[1])
    assert changed.root != tree.root
    assert changed.get(KEYS[3]) == VALUES[1]
    assert changed.check() == 20


def test_build_rejects_duplicates_and_invalid_keys() -> None:
    with pytest.raises(MSTError, match="duplicate"):
        MST.build([("c/1", VALUES[0]), ("c/1", VALUES[1])])
    with pytest.raises(MSTError):
        MST.build([("nope", VALUES[0])])


# --- errors ------------------------------------------------------------------------------------


def test_delete_missing_key_raises() -> None:
    with pytest.raises(MSTError, match="not found"):
        MST.empty().delete("c/1")
    tree = MST.build([(k, VALUES[0]) for k in SHORT_KEYS[:10]])
    for height in range(5):
        missing = key_of_height(height)
        with pytest.raises(MSTError, match="not found"):
            tree.delete(missing)
    loaded, _ = stored({k: VALUES[0] for k in SHORT_KEYS[:10]})
    with pytest.raises(MSTError, match="not found"):
        loaded.delete("c/999")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "nocollection",
        "/rkey",
        "collection/",
        "a/b/c",
        "a b/c",
        "coll/ké",
        "coll/a%20b",
        "coll/" + "x" * 1100,
        "coll/a\n",
    ],
)
def test_invalid_keys_rejected(key: str) -> None:
    with pytest.raises(MSTError, match="invalid MST key"):
        validate_key(key)
    with pytest.raises(MSTError):
        MST.empty().put(key, VALUES[0])
    with pytest.raises(MSTError):
        MST.build([("c/1", VALUES[0])]).put(key, VALUES[0])
    with pytest.raises(MSTError):
        MST.build([(key, VALUES[0])])


def test_valid_keys_accepted() -> None:
    for key in ["c/1", "app.bsky.feed.post/3jzfcijpj2z2a", "a_b~c-d:e.f/x_y~z-1:2.3", "c/self"]:
        assert validate_key(key) == key
        assert MST.empty().put(key, VALUES[0]).get(key) == VALUES[0]


def test_missing_block_raises_on_access() -> None:
    mapping = {k: VALUES[i % 8] for i, k in enumerate(KEYS)}
    built = MST.build(mapping.items())
    assert built.layer >= 2
    store = blocks_of(built)
    with pytest.raises(MSTError, match="missing"):
        MST.load({}, built.root)
    for child in [n for n in built.nodes() if n.cid != built.root][:10]:
        partial = {c: b for c, b in store.items() if c != child.cid}
        tree = MST.load(partial, built.root)
        with pytest.raises(MSTError, match="missing"):
            list(tree.items())
        with pytest.raises(MSTError, match="missing"):
            tree.check()
        with pytest.raises(MSTError, match="missing"):
            list(tree.nodes())
        # Every key the missing node holds is unreachable; other lookups may still work.
        for entry in child.entries:
            with pytest.raises(MSTError, match="missing"):
                tree.get(entry.key)
            with pytest.raises(MSTError, match="missing"):
                tree.delete(entry.key)


# --- node decoding ----------------------------------------------------------------------------

junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.text(max_size=5), st.binary())
cid_or_junk = st.one_of(st.sampled_from(VALUES), junk)
raw_entries = st.one_of(
    st.fixed_dictionaries(
        {
            "p": st.one_of(st.integers(-2, 40), junk),
            "k": st.one_of(st.binary(max_size=30), st.sampled_from([k.encode() for k in KEYS])),
            "v": cid_or_junk,
            "t": cid_or_junk,
        }
    ),
    st.dictionaries(st.sampled_from(["p", "k", "v", "t", "x"]), cid_or_junk, max_size=5),
    junk,
)
raw_nodes = st.one_of(
    st.fixed_dictionaries({"l": cid_or_junk, "e": st.lists(raw_entries, max_size=5)}),
    st.fixed_dictionaries({"l": cid_or_junk, "e": st.one_of(junk, st.lists(junk, max_size=3))}),
    st.dictionaries(st.sampled_from(["l", "e", "x"]), st.lists(raw_entries, max_size=3)),
    st.lists(raw_entries, max_size=3),
    junk,
)


def only_mst_errors(block: bytes) -> None:
    cid = CID.dag_cbor(block)
    try:
        node = decode_node(cid, block)
        tree = MST.load({cid: block}, cid)
        tree.check()
        list(tree.items())
        tree.get("c/1")
        tree.put("c/1", VALUES[0])
    except MSTError:
        return
    except Exception as exc:  # pragma: no cover - reported as a failure
        pytest.fail(f"{type(exc).__name__}: {exc}")
    assert node.cid == cid and node.block == block


@given(raw_nodes)
@settings(max_examples=300, deadline=None)
def test_malformed_node_blocks_raise_only_mst_error(value: Any) -> None:
    only_mst_errors(cbor.encode(value))


@given(st.binary(max_size=120))
@settings(max_examples=200, deadline=None)
def test_random_node_bytes_raise_only_mst_error(block: bytes) -> None:
    only_mst_errors(block)


@given(mappings)
@settings(max_examples=40, deadline=None)
def test_node_blocks_decode_to_the_same_node(mapping: dict[str, CID]) -> None:
    tree = MST.build(mapping.items())
    for node in tree.nodes():
        decoded = decode_node(node.cid, node.block)
        assert decoded.keys() == node.keys()
        assert decoded.block == node.block
        assert [e.value for e in decoded.entries] == [e.value for e in node.entries]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"l": None, "e": [], "x": 1}, id="extra-key"),
        pytest.param({"l": None}, id="no-entries"),
        pytest.param({"l": b"x", "e": []}, id="left-not-cid"),
        pytest.param({"l": None, "e": {}}, id="entries-not-list"),
        pytest.param({"l": None, "e": [{"p": 0, "k": b"c/1", "v": VALUES[0]}]}, id="entry-short"),
        pytest.param(
            {"l": None, "e": [{"p": 1, "k": b"c/1", "v": VALUES[0], "t": None}]},
            id="prefix-too-long",
        ),
        pytest.param(
            {"l": None, "e": [{"p": -1, "k": b"c/1", "v": VALUES[0], "t": None}]},
            id="prefix-negative",
        ),
        pytest.param(
            {"l": None, "e": [{"p": False, "k": b"c/1", "v": VALUES[0], "t": None}]},
            id="prefix-bool",
        ),
        pytest.param(
            {"l": None, "e": [{"p": 0, "k": "c/1", "v": VALUES[0], "t": None}]},
            id="key-not-bytes",
        ),
        pytest.param(
            {"l": None, "e": [{"p": 0, "k": b"c/1", "v": b"x", "t": None}]},
            id="value-not-cid",
        ),
        pytest.param(
            {"l": None, "e": [{"p": 0, "k": b"c/\xff", "v": VALUES[0], "t": None}]},
            id="key-not-ascii",
        ),
        pytest.param(
            {
                "l": None,
                "e": [
                    {"p": 0, "k": b"c/2", "v": VALUES[0], "t": None},
                    {"p": 2, "k": b"1", "v": VALUES[0], "t": None},
                ],
            },
            id="keys-out-of-order",
        ),
        pytest.param(
            {
                "l": None,
                "e": [
                    {"p": 0, "k": b"c/2", "v": VALUES[0], "t": None},
                    {"p": 3, "k": b"", "v": VALUES[0], "t": None},
                ],
            },
            id="key-repeated",
        ),
    ],
)
def test_decode_rejects_malformed_nodes(value: Any) -> None:
    block = cbor.encode(value)
    with pytest.raises(MSTError):
        decode_node(CID.dag_cbor(block), block)


def test_decode_rejects_invalid_cbor() -> None:
    with pytest.raises(MSTError, match="not valid DAG-CBOR"):
        decode_node(CID.dag_cbor(b"\xff"), b"\xff")


# --- check() on hand-made trees ----------------------------------------------------------------


def test_check_detects_key_at_wrong_layer() -> None:
    high_a, high_b = key_of_height(1, "a/"), key_of_height(1, "b/")
    low = key_of_height(0, "a/")
    assert high_a < high_b
    # A height-1 key placed in a layer-0 child of a layer-1 root.
    misplaced = Node(None, [Entry(high_a, VALUES[0], None)])
    root = Node(misplaced, [Entry(high_b, VALUES[1], None)])
    with pytest.raises(MSTError, match="layer"):
        MST(NodeLoader({}), root, 1).check()
    # The same tree read back from blocks.
    store = {misplaced.cid: misplaced.block, root.cid: root.block}
    loaded = MST.load(store, root.cid)
    assert loaded.layer == 1
    with pytest.raises(MSTError, match="layer"):
        loaded.check()
    # A height-0 key in a layer-1 node.
    root2 = Node(None, [Entry(low, VALUES[0], None), Entry(high_b, VALUES[1], None)])
    with pytest.raises(MSTError, match="layer"):
        MST(NodeLoader({}), root2, 1).check()
    # The correctly placed version passes.
    good = MST.build([(high_b, VALUES[1]), (low, VALUES[0])])
    assert good.check() == 2


def test_check_detects_other_invariants() -> None:
    a, b = key_of_height(0, "a/"), key_of_height(0, "b/")
    top = key_of_height(1, "m/")
    with pytest.raises(MSTError, match="out of order"):
        MST(
            NodeLoader({}), Node(None, [Entry(b, VALUES[0], None), Entry(a, VALUES[0], None)]), 0
        ).check()
    with pytest.raises(MSTError, match="out of order"):
        # Order across nodes: a key in the right subtree below its parent key.
        MST(
            NodeLoader({}),
            Node(None, [Entry(top, VALUES[0], Node(None, [Entry(a, VALUES[0], None)]))]),
            1,
        ).check()
    with pytest.raises(MSTError, match="trimmed"):
        MST(NodeLoader({}), Node(Node(None, [Entry(a, VALUES[0], None)]), []), 1).check()
    with pytest.raises(MSTError, match="empty"):
        MST(NodeLoader({}), Node(Node(None, []), [Entry(top, VALUES[0], None)]), 1).check()
    with pytest.raises(MSTError, match="layer 0 has a subtree"):
        MST(
            NodeLoader({}),
            Node(Node(None, [Entry(a, VALUES[0], None)]), [Entry(b, VALUES[0], None)]),
            0,
        ).check()
    with pytest.raises(MSTError, match="invalid MST key"):
        MST(NodeLoader({}), Node(None, [Entry("bad", VALUES[0], None)]), key_height("bad")).check()


# --- diff, inversion and proofs ----------------------------------------------------------------


@given(mappings, mappings)
@SETTINGS
def test_diff_and_inversion(a_map: dict[str, CID], b_map: dict[str, CID]) -> None:
    a_built, b_built = MST.build(a_map.items()), MST.build(b_map.items())
    store = blocks_of(a_built, b_built)
    a, b = MST.load(store, a_built.root), MST.load(store, b_built.root)

    d = diff(a, b)
    assert d.ops == expected_ops(a_map, b_map)
    a_nodes, b_nodes = set(blocks_of(a)), set(blocks_of(b))
    assert d.created_nodes == b_nodes - a_nodes
    assert d.deleted_nodes == a_nodes - b_nodes
    assert diff(b, a).ops == expected_ops(b_map, a_map)
    assert diff(a, a).ops == [] and diff(a, a).created_nodes == set()

    assert invert(b, d.ops).root == a.root
    if not d.ops:
        return

    # The inversion proof alone is enough to undo the ops.
    proof = inversion_proof_nodes(b, d.ops)
    assert proof <= b_nodes
    from_proof = MST.load({cid: store[cid] for cid in proof}, b.root)
    assert invert(from_proof, d.ops).root == a.root

    # So are the blocks a commit carries: covering proofs of each op and the new nodes.
    covering = set(d.created_nodes)
    for op in d.ops:
        covering |= covering_proof(b, op.path)
    assert proof <= covering <= b_nodes
    from_covering = MST.load({cid: store[cid] for cid in covering}, b.root)
    assert invert(from_covering, d.ops).root == a.root


@given(mappings, op_lists)
@SETTINGS
def test_inversion_of_in_memory_changes(
    initial: dict[str, CID], ops: list[tuple[str, CID | None]]
) -> None:
    """As a repository does it: change a stored tree in memory and prove the change."""
    before, store = stored(initial)
    model = dict(initial)
    after = apply_ops(before, model, ops)
    d = diff(before, after)
    assert d.ops == expected_ops(initial, model)
    if not d.ops:
        assert after.root == before.root
        return
    new_nodes = dict(after.new_blocks())
    assert set(new_nodes) == d.created_nodes
    all_blocks = {**store, **new_nodes}

    proof = inversion_proof_nodes(after, d.ops)
    assert invert(MST.load({c: all_blocks[c] for c in proof}, after.root), d.ops).root == (
        before.root
    )
    covering = set(d.created_nodes)
    for op in d.ops:
        covering |= covering_proof(after, op.path)
    partial = MST.load({c: all_blocks[c] for c in covering}, after.root)
    assert invert(partial, d.ops).root == before.root


@given(mappings, st.lists(keys, min_size=1, max_size=6))
@SETTINGS
def test_proof_nodes_prove_presence_and_absence(mapping: dict[str, CID], wanted: list[str]) -> None:
    tree, store = stored(mapping)
    proof = proof_nodes(tree, wanted)
    partial = MST.load({c: store[c] for c in proof}, tree.root)
    for key in wanted:
        assert path_nodes(tree, key)[0] == tree.root
        assert proven_get(partial, key) == mapping.get(key)
        if key in mapping or key_height(key) == 0:
            assert partial.get(key) == mapping.get(key)


def test_invert_rejects_ops_that_do_not_match() -> None:
    tree = MST.build([(k, VALUES[0]) for k in SHORT_KEYS[:10]])
    present, absent = SHORT_KEYS[0], "c/999"
    bad_ops = [
        [RecordOp(present, None, VALUES[1])],  # claims a value the tree does not hold
        [RecordOp(absent, None, VALUES[0])],  # claims a create of a key that is absent
        [RecordOp(present, VALUES[0], None)],  # claims a delete of a key that is present
    ]
    for ops in bad_ops:
        with pytest.raises(MSTError, match="does not match"):
            invert(tree, ops)


def test_inversion_proof_of_no_ops_is_empty() -> None:
    tree = MST.build([(k, VALUES[0]) for k in SHORT_KEYS[:10]])
    assert inversion_proof_nodes(tree, []) == set()


def test_inversion_fails_without_needed_blocks() -> None:
    a_map = {k: VALUES[0] for k in KEYS}
    b_map = dict(a_map)
    del b_map[KEYS[5]]
    b_map["c/999"] = VALUES[1]
    a, b = MST.build(a_map.items()), MST.build(b_map.items())
    store = blocks_of(a, b)
    d = diff(a, b)
    proof = inversion_proof_nodes(b, d.ops)
    for missing in proof:
        partial = {c: store[c] for c in proof if c != missing}
        with pytest.raises(MSTError):
            invert(MST.load(partial, b.root), d.ops)
