"""Labels: signed over their DAG-CBOR without `sig`, refused when any field changes or another
key signed, and malformed ones refused without a crash (fuzzed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.label import LabelError, check_label, new_label, sign_label, verify_label

SRC = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
URI = "at://did:plc:abc/app.bsky.feed.post/3k"
CTS = "2026-12-03T10:00:00.000Z"


@pytest.mark.parametrize("key", [K256Keypair.generate(), P256Keypair.generate()])
def test_signed_labels_verify_and_changed_ones_do_not(key: Any) -> None:
    label = sign_label(new_label(SRC, URI, "spam", CTS, cid=None, neg=False), key)
    assert verify_label(label, key.public_key)
    assert set(label) == {"ver", "src", "uri", "val", "neg", "cts", "sig"}
    for field, value in (
        ("val", "ham"),
        ("neg", True),
        ("uri", URI + "x"),
        ("cts", CTS[:-2] + "1Z"),
    ):
        assert not verify_label({**label, field: value}, key.public_key), field
    assert not verify_label(label, K256Keypair.generate().public_key)
    assert not verify_label({k: v for k, v in label.items() if k != "sig"}, key.public_key)
    # Through its JSON form and back (queryLabels), it still verifies.
    assert verify_label(cbor.from_json(cbor.to_json(label)), key.public_key)


@pytest.mark.parametrize(
    "bad",
    [
        None, "label", {}, {"src": SRC, "uri": URI, "val": "x"},
        {"src": "not a did", "uri": URI, "val": "x", "cts": CTS},
        {"src": SRC, "uri": URI, "val": "x" * 129, "cts": CTS},
        {"src": SRC, "uri": URI, "val": "x", "cts": "yesterday"},
        {"src": SRC, "uri": URI, "val": "x", "cts": CTS, "neg": "yes"},
        {"src": SRC, "uri": URI, "val": "x", "cts": CTS, "sig": "not bytes"},
    ],
)  # fmt: skip
def test_malformed_labels_are_refused(bad: Any) -> None:
    with pytest.raises(LabelError):
        check_label(bad)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(["ver", "src", "uri", "val", "neg", "cts", "exp", "cid", "sig"]), values
    )
)
def test_any_object_is_checked_without_crashing(label: dict[str, Any]) -> None:
    key = K256Keypair.generate().public_key
    try:
        check_label(label)
    except LabelError:
        return
    assert not verify_label(label, key)
