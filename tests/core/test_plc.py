"""did:plc operations: shapes, signatures, DIDs, the log rules, and documents."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.plc import (
    RECOVERY_WINDOW_MS,
    GenesisHashMismatch,
    ImproperOperation,
    IndexedOp,
    InvalidSignature,
    LateRecovery,
    MisorderedOperation,
    PlcError,
    assure_valid_next_op,
    check_limits,
    check_rate_limit,
    did_for_genesis,
    document_data,
    format_did_document,
    next_operation,
    normalize_operation,
    operation_cid,
    parse_operation,
    sign_operation,
    validate_operation_log,
    validate_plc_did,
)
from tests.plcops import genesis, tombstone, update

RECOVERY = K256Keypair.from_private_bytes(bytes(range(1, 33)))
PDS = P256Keypair.from_private_bytes(bytes(range(2, 34)))
OTHER = K256Keypair.from_private_bytes(bytes(range(3, 35)))
HOUR = 3600 * 1000


def indexed(did: str, ops: list[dict[str, Any]], start: int = 1_000_000, step: int = 1000):
    return [
        IndexedOp(did, op, str(operation_cid(op)), False, start + i * step)
        for i, op in enumerate(ops)
    ]


def test_genesis_did_is_base32_sha256_prefix() -> None:
    did, op = genesis([RECOVERY, PDS], PDS)
    assert did == did_for_genesis(op)
    assert validate_plc_did(did) == did
    assert assure_valid_next_op(did, [], op, 0).nullified == []


def test_genesis_for_another_did_is_refused() -> None:
    _, op = genesis([RECOVERY, PDS], PDS)
    other, _ = genesis([OTHER], OTHER)
    with pytest.raises(GenesisHashMismatch):
        assure_valid_next_op(other, [], op, 0)


def test_genesis_signed_by_a_key_it_does_not_list_is_refused() -> None:
    did, op = genesis([RECOVERY, PDS], OTHER)
    with pytest.raises(InvalidSignature):
        assure_valid_next_op(did, [], op, 0)


def test_signature_must_be_canonical_base64url() -> None:
    _did, op = genesis([RECOVERY], RECOVERY)
    raw = base64.urlsafe_b64decode(op["sig"] + "==")
    padded = {**op, "sig": base64.urlsafe_b64encode(raw).decode()}
    standard = {**op, "sig": base64.b64encode(raw).decode().rstrip("=")}
    # 64 bytes leave 2 spare bits in the last character; setting them keeps the bytes.
    last = op["sig"][-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    dirty = {**op, "sig": op["sig"][:-1] + alphabet[alphabet.index(last) | 1]}
    for bad in (padded, dirty) + ((standard,) if standard["sig"] != op["sig"] else ()):
        with pytest.raises(InvalidSignature):
            assure_valid_next_op(did_for_genesis(bad), [], bad, 0)


def test_high_s_signature_is_refused() -> None:
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    _did, op = genesis([RECOVERY], RECOVERY)
    raw = base64.urlsafe_b64decode(op["sig"] + "==")
    high = raw[:32] + (order - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    forged = {**op, "sig": base64.urlsafe_b64encode(high).decode().rstrip("=")}
    with pytest.raises(InvalidSignature):
        assure_valid_next_op(did_for_genesis(forged), [], forged, 0)


def test_update_chain_and_stale_prev() -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    u1 = update(g, PDS, alsoKnownAs=["at://bob.test"])
    log = indexed(did, [g])
    assert assure_valid_next_op(did, log, u1, 2_000_000).prev == str(operation_cid(g))
    log = indexed(did, [g, u1])
    # Extending the log from the genesis again, with the same key, is a fork it may not make.
    u2 = update(g, PDS, alsoKnownAs=["at://carol.test"])
    with pytest.raises(InvalidSignature):
        assure_valid_next_op(did, log, u2, 3_000_000)
    with pytest.raises(MisorderedOperation):
        assure_valid_next_op(did, log, {**u1, "prev": None}, 3_000_000)


def test_recovery_key_nullifies_within_window() -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    u1 = update(g, PDS, alsoKnownAs=["at://evil.test"])
    u2 = update(u1, PDS, alsoKnownAs=["at://evil2.test"])
    log = indexed(did, [g, u1, u2], step=HOUR)
    fix = update(g, RECOVERY, rotationKeys=[RECOVERY.did()])
    nxt = assure_valid_next_op(did, log, fix, log[1].created_at_ms + 71 * HOUR)
    assert nxt.nullified == [log[1].cid, log[2].cid]
    with pytest.raises(LateRecovery):
        assure_valid_next_op(did, log, fix, log[1].created_at_ms + RECOVERY_WINDOW_MS + 1)
    # Not later than the newest operation in the log.
    with pytest.raises(MisorderedOperation):
        assure_valid_next_op(did, log, fix, log[2].created_at_ms)


def test_lower_priority_key_cannot_undo_recovery() -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    by_recovery = update(g, RECOVERY, alsoKnownAs=["at://safe.test"])
    log = indexed(did, [g, by_recovery])
    fork = update(g, PDS, alsoKnownAs=["at://evil.test"])
    with pytest.raises(InvalidSignature):
        assure_valid_next_op(did, log, fork, 9_000_000)


def test_nothing_follows_a_tombstone() -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    t = tombstone(g, PDS)
    log = indexed(did, [g, t])
    after = sign_operation(
        {**{k: v for k, v in g.items() if k != "sig"}, "prev": str(operation_cid(t))}, PDS
    )
    with pytest.raises(MisorderedOperation):
        assure_valid_next_op(did, log, after, 9_000_000)
    assert document_data(did, t) is None
    assert validate_operation_log(did, [g, t]) is None


def test_legacy_create_log_validates() -> None:
    unsigned = {
        "type": "create",
        "signingKey": OTHER.did(),
        "recoveryKey": RECOVERY.did(),
        "handle": "legacy.test",
        "service": "pds.test",
        "prev": None,
    }
    create = sign_operation(unsigned, RECOVERY)
    did = did_for_genesis(create)
    norm = normalize_operation(create)
    assert norm["rotationKeys"] == [RECOVERY.did(), OTHER.did()]
    assert norm["alsoKnownAs"] == ["at://legacy.test"]
    assert norm["services"]["atproto_pds"]["endpoint"] == "https://pds.test"
    follow = sign_operation(
        {**{k: v for k, v in norm.items() if k != "sig"}, "prev": str(operation_cid(create))}, OTHER
    )
    data = validate_operation_log(did, [create, follow])
    assert data is not None and data.also_known_as == ["at://legacy.test"]
    with pytest.raises(ImproperOperation, match="Legacy"):
        check_limits(create)


def test_limits() -> None:
    _, g = genesis([RECOVERY, PDS], PDS)
    check_limits(g)
    base = {k: v for k, v in g.items() if k != "sig"}
    too_many = sign_operation({**base, "alsoKnownAs": [f"at://h{i}.test" for i in range(11)]}, PDS)
    dupes = sign_operation({**base, "alsoKnownAs": ["at://a.test", "at://a.test"]}, PDS)
    bad_key = sign_operation({**base, "rotationKeys": ["did:key:zzz"]}, PDS)
    bad_vm = sign_operation({**base, "verificationMethods": {"atproto": "did:web:x"}}, PDS)
    huge = sign_operation(
        {
            **base,
            "services": {f"s{i}": {"type": "x" * 250, "endpoint": "https://x"} for i in range(10)},
            "alsoKnownAs": ["at://" + "a" * 250 for _ in range(1)],
        },
        PDS,
    )
    huge = sign_operation(
        {
            **base,
            "verificationMethods": {f"k{i}": "did:key:z" + "1" * 250 for i in range(10)},
            "services": huge["services"],
        },
        PDS,
    )
    assert len(cbor.encode(huge)) > 4000
    for op, reason in [
        (too_many, "Too many alsoKnownAs"),
        (dupes, "Duplicate"),
        (bad_key, "Invalid rotationKey"),
        (bad_vm, "Invalid verificationMethod"),
        (huge, "too large"),
    ]:
        with pytest.raises(ImproperOperation, match=reason):
            check_limits(op)


def test_rate_limit_counts_recent_operations() -> None:
    did, g = genesis([RECOVERY], RECOVERY)
    now = 100 * 86_400_000
    log = [IndexedOp(did, g, f"c{i}", False, now - i * 1000) for i in range(10)]
    with pytest.raises(ImproperOperation, match="hour"):
        check_rate_limit(log, now)
    check_rate_limit(log[:9], now)


def test_parse_operation_refuses_wrong_shapes() -> None:
    _, g = genesis([RECOVERY], RECOVERY)
    cases = [
        None,
        [],
        "op",
        {},
        {**g, "type": "other"},
        {**g, "extra": 1},
        {k: v for k, v in g.items() if k != "sig"},
        {**g, "rotationKeys": "k"},
        {**g, "services": {"a": {"type": "t"}}},
        {**g, "services": {"a": {"type": "t", "endpoint": 1}}},
        {**g, "prev": 5},
        {**g, "prev": "not-a-cid"},
        {**g, "sig": None},
        {"type": "plc_tombstone", "prev": None, "sig": "x"},
        {
            "type": "create",
            "signingKey": 1,
            "recoveryKey": "",
            "handle": "",
            "service": "",
            "prev": None,
            "sig": "",
        },
    ]
    for case in cases:
        with pytest.raises(ImproperOperation):
            parse_operation(case)
    assert parse_operation(json.loads(json.dumps(g))) == g


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "rotationKeys",
                "verificationMethods",
                "alsoKnownAs",
                "services",
                "prev",
                "sig",
                "signingKey",
                "recoveryKey",
                "handle",
                "service",
            ]
        ),
        json_values | st.sampled_from(["plc_operation", "plc_tombstone", "create"]),
    )
)
def test_fuzz_operations_only_raise_plc_errors(obj: dict[str, Any]) -> None:
    did, _ = genesis([RECOVERY], RECOVERY)
    try:
        op = parse_operation(obj)
        check_limits(op)
        assure_valid_next_op(did, [], op, 0)
    except PlcError:
        pass


def test_document_format() -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    doc = format_did_document(document_data(did, g))
    assert doc["id"] == did
    assert doc["@context"] == [
        "https://www.w3.org/ns/did/v1",
        "https://w3id.org/security/multikey/v1",
        "https://w3id.org/security/suites/secp256k1-2019/v1",
    ]
    assert doc["verificationMethod"] == [
        {
            "id": f"{did}#atproto",
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": RECOVERY.did().removeprefix("did:key:"),
        }
    ]
    assert doc["service"] == [
        {
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": "https://pds.test",
        }
    ]


def test_next_operation_extends_the_last_and_the_directory_accepts_it() -> None:
    did, first = genesis([RECOVERY, PDS], PDS)
    service = {"type": "AtprotoPersonalDataServer", "endpoint": "https://new.example"}
    moved = next_operation(first, {"services": {"atproto_pds": service}}, RECOVERY)
    assert moved["prev"] == str(operation_cid(first))
    assert moved["rotationKeys"] == first["rotationKeys"]
    assert moved["services"]["atproto_pds"]["endpoint"] == "https://new.example"
    log = indexed(did, [first])
    assert assure_valid_next_op(did, log, moved, 2_000_000).prev == str(operation_cid(first))
    stranger = next_operation(first, {}, OTHER)
    with pytest.raises(InvalidSignature):
        assure_valid_next_op(did, log, stranger, 2_000_000)
