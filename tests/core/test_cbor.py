"""DAG-CBOR encoding, the data model's JSON form, and CIDs."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.cid import (
    CID,
    DAG_CBOR,
    RAW,
    cid_length,
    encode_uvarint,
    read_uvarint,
)
from strata.core.errors import CoreError, DecodeError

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
CID_PREFIX = b"\x00\x01\x71\x12\x20"

cids = st.one_of(
    st.binary(max_size=64).map(CID.dag_cbor),
    st.binary(max_size=64).map(CID.raw),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.text(max_size=40),
    st.binary(max_size=64),
    cids,
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=30,
)
# Keys a JSON object can hold without being read as a `$link` / `$bytes` / typed object.
json_keys = st.text(max_size=12).filter(lambda k: not k.startswith("$"))
json_safe_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(json_keys, children, max_size=6),
    ),
    max_leaves=30,
)
blobs = st.builds(
    lambda data, mime: {
        "$type": "blob",
        "ref": CID.raw(data),
        "mimeType": mime,
        "size": len(data),
    },
    st.binary(max_size=64),
    st.sampled_from(["image/png", "image/jpeg", "video/mp4", "application/octet-stream"]),
)


def canonical_key(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def reverse_dicts(value: Any) -> Any:
    """The same value with every map built in reverse insertion order."""
    if isinstance(value, dict):
        return {k: reverse_dicts(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reverse_dicts(v) for v in value]
    return value


def only_decode_errors(func: Any, data: Any) -> None:
    """Call `func(data)`; any exception other than `DecodeError` fails the test."""
    try:
        func(data)
    except DecodeError:
        pass
    except Exception as exc:  # pragma: no cover - reported as a failure
        pytest.fail(f"{func.__name__}({data!r}) raised {type(exc).__name__}: {exc}")


# --- encode / decode ---------------------------------------------------------------------------


@given(values)
def test_encode_decode_round_trip(value: Any) -> None:
    block = cbor.encode(value)
    assert cbor.decode(block) == value
    # Encoding is deterministic and decoding is exact.
    assert cbor.encode(cbor.decode(block)) == block
    assert cbor.decode(memoryview(block)) == value


@given(values)
def test_decoded_cids_are_our_cid_type(value: Any) -> None:
    decoded = cbor.decode(cbor.encode({"v": value, "c": CID.dag_cbor(b"x")}))
    assert type(decoded["c"]) is CID


@given(st.dictionaries(st.text(max_size=12), values, max_size=8))
def test_map_key_order_is_canonical(value: dict[str, Any]) -> None:
    block = cbor.encode(value)
    assert cbor.encode(reverse_dicts(value)) == block
    decoded = cbor.decode(block)
    assert list(decoded) == sorted(value, key=canonical_key)


def test_map_key_order_is_length_first() -> None:
    block = cbor.encode({"bb": 1, "a": 2, "c": 3})
    assert block == bytes.fromhex("a361610261630362626201")
    assert cbor.encode({"c": 3, "a": 2, "bb": 1}) == block


@pytest.mark.parametrize(
    "hex_block",
    [
        pytest.param("a2616201616102", id="map-keys-unsorted"),
        pytest.param("a26161016161 02", id="map-keys-duplicate"),
        pytest.param("1801", id="int-not-minimal"),
        pytest.param("0000", id="trailing-bytes"),
        pytest.param("a1016161", id="non-string-key"),
        pytest.param("7f61616162ff", id="indefinite-string"),
        pytest.param("c1", id="unknown-tag"),
        pytest.param("", id="empty"),
        pytest.param("d82a40", id="cid-without-prefix"),
        pytest.param("d82a45000171", id="cid-truncated-buffer"),
    ],
)
def test_decode_rejects_non_canonical_or_invalid(hex_block: str) -> None:
    with pytest.raises(DecodeError):
        cbor.decode(bytes.fromhex(hex_block.replace(" ", "")))
    with pytest.raises(DecodeError):
        cbor.decode_to_json(bytes.fromhex(hex_block.replace(" ", "")))


@pytest.mark.parametrize(
    "hex_block",
    [
        pytest.param("d82a4100", id="empty-cid"),
        pytest.param("d82a43000171", id="no-multihash"),
        pytest.param("d82a45000155000a", id="digest-missing"),
    ],
)
def test_decode_rejects_malformed_cid_link(hex_block: str) -> None:
    with pytest.raises(DecodeError):
        cbor.decode(bytes.fromhex(hex_block))


@pytest.mark.parametrize(
    "value",
    [2**63 - 1, -(2**63), 2**64 - 1, -(2**64), 0, -1, 23, 24, 255, 256, 65535, 65536],
)
def test_integer_boundaries_round_trip(value: int) -> None:
    assert cbor.decode(cbor.encode(value)) == value


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, {1: 2}, {"a": object()}, {1.5, 2.5}])
def test_encode_rejects_non_data_model_values(value: Any) -> None:
    with pytest.raises(DecodeError):
        cbor.encode(value)


@given(st.binary(min_size=32, max_size=32))
def test_cid_shaped_bytes_are_a_byte_string(digest: bytes) -> None:
    value = CID_PREFIX + digest
    assert len(value) == 37
    block = cbor.encode(value)
    # Major type 2 (byte string), 37 bytes: 0x58 0x25, never tag 42 (0xd8 0x2a).
    assert block[:2] == b"\x58\x25"
    decoded = cbor.decode(block)
    assert type(decoded) is bytes and decoded == value
    nested = cbor.decode(cbor.encode({"b": value, "l": [value]}))
    assert type(nested["b"]) is bytes and type(nested["l"][0]) is bytes
    assert cbor.to_json({"b": value}) == {
        "b": {"$bytes": base64.b64encode(value).decode().rstrip("=")}
    }


def test_cid_is_encoded_as_tag_42() -> None:
    cid = CID.dag_cbor(b"hello")
    block = cbor.encode(cid)
    assert block == b"\xd8\x2a\x58\x25" + CID_PREFIX + cid.cid_bytes[4:]
    assert cbor.decode(block) == cid


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    only_decode_errors(cbor.decode, data)
    only_decode_errors(cbor.decode_to_json, data)


@given(values, st.data())
@settings(max_examples=200)
def test_corrupted_blocks_raise_only_decode_error(value: Any, data: st.DataObject) -> None:
    block = bytearray(cbor.encode(value))
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(block)))
        if action == "flip" and pos < len(block):
            block[pos] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del block[pos:]
        else:
            block.insert(pos, data.draw(st.integers(0, 255)))
    only_decode_errors(cbor.decode, bytes(block))
    only_decode_errors(cbor.decode_to_json, bytes(block))


def test_deep_nesting_does_not_crash() -> None:
    deep = b"\x81" * 100_000 + b"\x00"
    only_decode_errors(cbor.decode, deep)
    only_decode_errors(cbor.decode_to_json, deep)


def test_encode_with_cid_and_cid_of() -> None:
    value = {"text": "hello", "n": 1}
    cid, block = cbor.encode_with_cid(value)
    assert block == cbor.encode(value)
    assert cid == cbor.cid_of(value) == CID.dag_cbor(block)
    assert cid.codec == DAG_CBOR
    assert cid.verify(block)


# --- JSON form ---------------------------------------------------------------------------------


@given(st.dictionaries(json_keys, json_safe_values, max_size=6))
def test_json_round_trip(value: dict[str, Any]) -> None:
    as_json = cbor.to_json(value)
    assert cbor.from_json(as_json) == value
    assert cbor.decode_to_json(cbor.encode(value)) == as_json


@given(blobs, st.dictionaries(json_keys, json_safe_values, max_size=3))
def test_json_round_trip_with_blobs(blob: dict[str, Any], extra: dict[str, Any]) -> None:
    record = {**extra, "$type": "app.example.record", "blob": blob, "blobs": [blob]}
    as_json = cbor.to_json(record)
    assert as_json["blob"]["ref"] == {"$link": str(blob["ref"])}
    assert cbor.from_json(as_json) == record
    assert cbor.decode_to_json(cbor.encode(record)) == as_json


def test_json_links_and_bytes() -> None:
    cid = CID.dag_cbor(b"x")
    value = {"link": cid, "bytes": b"\x00\x01\xff", "nested": [{"link": cid}]}
    as_json = cbor.to_json(value)
    assert as_json == {
        "link": {"$link": str(cid)},
        "bytes": {"$bytes": "AAH/"},
        "nested": [{"link": {"$link": str(cid)}}],
    }
    assert cbor.from_json(as_json) == value
    # Padding in $bytes is tolerated on input and never produced on output.
    assert cbor.from_json({"b": {"$bytes": "AQ=="}}) == {"b": b"\x01"}
    assert cbor.to_json(b"\x01") == {"$bytes": "AQ"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"a": 1.5}, id="float"),
        pytest.param({"a": [0.1]}, id="float-in-list"),
        pytest.param({"a": float("nan")}, id="nan"),
        pytest.param({"a": float("inf")}, id="inf"),
        pytest.param({"a": {"b": -2.25}}, id="nested-float"),
    ],
)
def test_from_json_rejects_floats(value: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        cbor.from_json(value)


def test_from_json_accepts_integral_floats() -> None:
    value = cbor.from_json({"a": 3.0, "b": [-0.0, 12.0]})
    assert value == {"a": 3, "b": [0, 12]}
    assert all(type(v) is int for v in (value["a"], *value["b"]))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([], id="top-level-list"),
        pytest.param("text", id="top-level-string"),
        pytest.param({"a": {"$link": "bafy"}}, id="bad-link"),
        pytest.param({"a": {"$link": 5}}, id="link-not-string"),
        pytest.param({"a": {"$link": str(CID.dag_cbor(b"")), "x": 1}}, id="link-extra-key"),
        pytest.param({"a": {"$bytes": "!!"}}, id="bad-base64"),
        pytest.param({"a": {"$bytes": 1}}, id="bytes-not-string"),
        pytest.param({"a": {"$bytes": "AQ", "x": 1}}, id="bytes-extra-key"),
        pytest.param({"$type": ""}, id="empty-type"),
        pytest.param({"$type": 3}, id="type-not-string"),
        pytest.param({"a": {"$type": "blob", "mimeType": "a/b", "size": 1}}, id="blob-no-ref"),
        pytest.param(
            {"a": {"$type": "blob", "ref": "bafy", "mimeType": "a/b", "size": 1}},
            id="blob-ref-string",
        ),
        pytest.param(
            {
                "a": {
                    "$type": "blob",
                    "ref": {"$link": str(CID.raw(b""))},
                    "mimeType": 1,
                    "size": 1,
                }
            },
            id="blob-mime-not-string",
        ),
        pytest.param(
            {
                "a": {
                    "$type": "blob",
                    "ref": {"$link": str(CID.raw(b""))},
                    "mimeType": "a/b",
                    "size": True,
                }
            },
            id="blob-size-bool",
        ),
        pytest.param({"a": (1, 2)}, id="tuple"),
        pytest.param({"a": {1: 2}}, id="non-string-key"),
    ],
)
def test_from_json_rejects_invalid(value: Any) -> None:
    with pytest.raises(DecodeError):
        cbor.from_json(value)


def test_from_json_rejects_deep_nesting() -> None:
    value: Any = 1
    for _ in range(cbor.MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(DecodeError):
        cbor.from_json({"a": value})


# --- CIDs --------------------------------------------------------------------------------------


@given(cids)
def test_cid_string_round_trip(cid: CID) -> None:
    text = str(cid)
    assert text.startswith("bafy") or text.startswith("bafk")
    assert text == text.lower() and "=" not in text
    parsed = CID.from_str(text)
    assert parsed == cid and type(parsed) is CID
    assert CID.from_bytes(cid.cid_bytes) == cid
    assert hash(parsed) == hash(cid)
    assert repr(cid) == f"CID({text})"


@given(
    st.integers(0, 2**32),
    st.integers(0, 2**20),
    st.binary(max_size=64),
)
def test_any_cidv1_round_trips(codec: int, hash_code: int, digest: bytes) -> None:
    raw = b"\x01" + encode_uvarint(codec) + encode_uvarint(hash_code)
    raw += encode_uvarint(len(digest)) + digest
    cid = CID.from_bytes(raw)
    assert cid.cid_bytes == raw
    assert cid.codec == codec
    assert cid_length(raw + b"trailing") == len(raw)
    assert CID.from_str(str(cid)) == cid


def test_cid_constructors_and_codec() -> None:
    data = b"some bytes"
    digest = hashlib.sha256(data).digest()
    assert CID.dag_cbor(data).cid_bytes == b"\x01\x71\x12\x20" + digest
    assert CID.raw(data).cid_bytes == b"\x01\x55\x12\x20" + digest
    assert CID.dag_cbor(data).codec == DAG_CBOR
    assert CID.raw(data).codec == RAW
    assert CID.dag_cbor(data) != CID.raw(data)


def test_known_cid_string() -> None:
    # The CID of the empty MST node `{e: [], l: null}`, as every atproto implementation has it.
    cid = cbor.cid_of({"e": [], "l": None})
    assert str(cid) == "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_cid_verify(block: bytes, other: bytes) -> None:
    for cid in (CID.dag_cbor(block), CID.raw(block)):
        assert cid.verify(block)
        assert cid.verify(other) == (block == other)


def test_cid_verify_rejects_other_hashes() -> None:
    digest = hashlib.sha256(b"x").digest()
    # Same digest, but labelled as sha2-512 / identity: not something verify() can vouch for.
    assert not CID.from_bytes(b"\x01\x71\x13\x20" + digest).verify(b"x")
    assert not CID.from_bytes(b"\x01\x55\x00\x01x").verify(b"x")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="version-0"),
        pytest.param(b"\x12\x20" + bytes(32), id="cidv0"),
        pytest.param(b"\x02\x71\x12\x20" + bytes(32), id="version-2"),
        pytest.param(b"\x01\x71\x12\x20" + bytes(31), id="digest-truncated"),
        pytest.param(b"\x01\x71\x12\x20" + bytes(33), id="trailing-byte"),
        pytest.param(b"\x01\x71\x12", id="no-digest-length"),
        pytest.param(b"\x01\x80\x00\x12\x20" + bytes(32), id="non-minimal-varint"),
        pytest.param(b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", id="varint-too-long"),
        pytest.param(b"\x01\x71\x12\x81\x01" + bytes(129), id="digest-too-long"),
    ],
)
def test_cid_from_bytes_rejects_garbage(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        CID.from_bytes(raw)


@given(st.binary(max_size=80))
@settings(max_examples=300)
def test_cid_from_bytes_random(raw: bytes) -> None:
    try:
        cid = CID.from_bytes(raw)
    except DecodeError:
        return
    except Exception as exc:  # pragma: no cover - reported as a failure
        pytest.fail(f"CID.from_bytes({raw!r}) raised {type(exc).__name__}: {exc}")
    assert cid.cid_bytes == raw and raw[0] == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "b",
        "bafy",
        "Bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
        "bAFYREIE5737GDXLW5I64VZICHCALBA3Z2V5N6ICIFVX5XYTVSKE7MR3HPM",
        "zafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm=",
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hp",
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm\x00",
        "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpé",
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n",
        "b" + "a" * 300,
    ],
)
def test_cid_from_str_rejects(text: str) -> None:
    with pytest.raises(DecodeError):
        CID.from_str(text)


@given(st.one_of(st.text(max_size=80), st.text(max_size=80).map(lambda s: "b" + s)))
@settings(max_examples=300)
def test_cid_from_str_random_text(text: str) -> None:
    try:
        cid = CID.from_str(text)
    except DecodeError:
        return
    except Exception as exc:  # pragma: no cover - reported as a failure
        pytest.fail(f"CID.from_str({text!r}) raised {type(exc).__name__}: {exc}")
    assert str(cid) == text


@given(st.integers(0, 2**63))
def test_uvarint_round_trip(value: int) -> None:
    raw = encode_uvarint(value)
    assert read_uvarint(raw + b"\x00", 0) == (value, len(raw))


@pytest.mark.parametrize("raw", [b"", b"\x80", b"\x80\x00", b"\xff" * 10 + b"\x01"])
def test_uvarint_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        read_uvarint(raw, 0)


def test_errors_are_value_errors() -> None:
    assert issubclass(DecodeError, CoreError)
    assert issubclass(DecodeError, ValueError)
    with pytest.raises(ValueError):
        encode_uvarint(-1)
