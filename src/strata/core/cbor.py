"""DAG-CBOR and the atproto data model, with its JSON form.

Encoding is delegated to `cbrrr`, whose encoder is canonical by construction (shortest integers,
map keys sorted length-first) and which only emits tag 42 for values of our `CID` type, never for
byte strings that happen to look like one. DAG-CBOR itself allows floats; the atproto data model
does not, and its JSON form (`from_json`) and the lexicon validator are where they are refused.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import cbrrr

from strata.core.cid import CID, SHA256_CID_PREFIXES
from strata.core.errors import DecodeError

# Deeper nesting than this is hostile input, not data: records are shallow.
MAX_DEPTH: Final = 128
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def _link(cid_bytes: bytes) -> CID:
    """Build a CID for the decoder, checking the structure of any but the two common kinds."""
    if len(cid_bytes) == 36 and cid_bytes[:4] in SHA256_CID_PREFIXES:
        return CID(cid_bytes)
    return CID.from_bytes(cid_bytes)


DataModel = Any
"""A value of the atproto data model: None, bool, int, str, bytes, CID, list, dict[str, ...]."""


def encode(value: DataModel) -> bytes:
    """Encode a data-model value as canonical DAG-CBOR."""
    try:
        return bytes(cbrrr.encode_dag_cbor(value, cid_type=CID))
    except (TypeError, ValueError, OverflowError) as exc:
        raise DecodeError(f"value cannot be encoded as DAG-CBOR: {exc}") from exc


def decode(data: bytes | memoryview) -> DataModel:
    """Decode exactly one DAG-CBOR object, rejecting trailing bytes and non-canonical forms."""
    try:
        return cbrrr.decode_dag_cbor(
            data if isinstance(data, bytes) else bytes(data), cid_ctor=_link
        )
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise DecodeError(f"invalid DAG-CBOR: {exc}") from exc


def decode_pair(data: bytes) -> tuple[DataModel, DataModel]:
    """Decode exactly two DAG-CBOR objects back to back, as event-stream frames carry them."""
    try:
        objects = cbrrr.decode_multi_dag_cbor_in_violation_of_the_spec(data, cid_ctor=_link)
        first, second = next(objects), next(objects)
        extra = next(objects, None) is not None
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise DecodeError(f"invalid DAG-CBOR: {exc}") from exc
    except StopIteration as exc:
        raise DecodeError("expected two DAG-CBOR objects, found one") from exc
    if extra:
        raise DecodeError("more than two DAG-CBOR objects")
    return first, second


def encode_with_cid(value: DataModel) -> tuple[CID, bytes]:
    """Encode a value and return its CID alongside the bytes."""
    block = encode(value)
    return CID.dag_cbor(block), block


def cid_of(value: DataModel) -> CID:
    """The CID of a value's canonical DAG-CBOR encoding."""
    return CID.dag_cbor(encode(value))


def _b64decode(text: str) -> bytes:
    # The data model's JSON form uses standard base64 without padding; accept padding too.
    text = text.rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise DecodeError(f"invalid base64 in $bytes: {exc}") from exc


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unicode(text: str) -> str:
    # JSON can spell lone surrogates (`"\ud800"`), which are not Unicode scalar values and have
    # no UTF-8 encoding.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError("string is not valid Unicode (lone surrogate)") from exc
    return text


def _from_json(value: Any, depth: int) -> DataModel:
    if depth > MAX_DEPTH:
        raise DecodeError("data is nested too deeply")
    if isinstance(value, str):
        return _unicode(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise DecodeError(f"integer {value} is outside the 64-bit range")
        return value
    if isinstance(value, float):
        if value.is_integer():
            return _from_json(int(value), depth)
        raise DecodeError(f"floats are not allowed in the data model: {value}")
    if isinstance(value, list):
        return [_from_json(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return _object_from_json(value, depth)
    raise DecodeError(f"unsupported JSON value of type {type(value).__name__}")


def _object_from_json(obj: dict[str, Any], depth: int) -> DataModel:
    if "$link" in obj:
        link = obj["$link"]
        if len(obj) != 1 or not isinstance(link, str):
            raise DecodeError("$link must be the only key and hold a CID string")
        return CID.from_str(link)
    if "$bytes" in obj:
        raw = obj["$bytes"]
        if len(obj) != 1 or not isinstance(raw, str):
            raise DecodeError("$bytes must be the only key and hold a base64 string")
        return _b64decode(raw)
    out: dict[str, DataModel] = {}
    for key, item in obj.items():
        if not isinstance(key, str):
            raise DecodeError("object keys must be strings")
        out[_unicode(key)] = _from_json(item, depth + 1)
    check_object(out)
    return out


def check_object(obj: dict[str, DataModel]) -> None:
    """Check the data model's rules on one object: `$type` and the shape of a blob."""
    if "$type" not in obj:
        return
    type_name = obj["$type"]
    if not isinstance(type_name, str) or not type_name:
        raise DecodeError("$type must be a non-empty string")
    if type_name == "blob":
        ref = obj.get("ref")
        if not isinstance(ref, CID):
            raise DecodeError("blob must have a ref that is a CID link")
        if not isinstance(obj.get("mimeType"), str):
            raise DecodeError("blob must have a mimeType string")
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            raise DecodeError("blob must have an integer size")


def from_json(value: Any) -> DataModel:
    """Convert parsed JSON (with `$link`, `$bytes` and blob objects) to a data-model object.

    The top level must be an object, as for records and XRPC bodies.
    """
    if not isinstance(value, dict):
        raise DecodeError("top level of a data-model record must be an object")
    return _from_json(value, 0)


def to_json(value: DataModel, _depth: int = 0) -> Any:
    """Convert a data-model value to its JSON form (CID -> `$link`, bytes -> `$bytes`)."""
    if _depth > MAX_DEPTH:
        raise DecodeError("data is nested too deeply")
    if isinstance(value, dict):
        return {k: to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v, _depth + 1) for v in value]
    if isinstance(value, CID):
        return {"$link": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": _b64encode(value)}
    return value


def decode_to_json(data: bytes) -> Any:
    """Decode DAG-CBOR straight to its JSON form."""
    return to_json(decode(data))
