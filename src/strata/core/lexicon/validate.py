"""Checking data-model values against lexicon definitions.

Values are in the atproto data model, as `strata.core.cbor.decode` or `from_json` produce them:
`bytes` for bytes, `CID` for cid-links, and blobs as `{"$type": "blob", "ref", "mimeType",
"size"}` objects (the legacy `{"cid", "mimeType"}` form is accepted too, as the reference
implementations do). Objects may carry properties their schema does not name. A union member
whose `$type` is not listed is accepted in an open union, and checked when the catalog knows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol

from strata.core import syntax
from strata.core.cbor import MAX_DEPTH
from strata.core.cid import CID
from strata.core.errors import DecodeError, LexiconError
from strata.core.lexicon.graphemes import count_graphemes
from strata.core.lexicon.schema import (
    ArrayDef,
    BlobDef,
    BodyDef,
    BooleanDef,
    BytesDef,
    CidLinkDef,
    Def,
    IntegerDef,
    ObjectDef,
    ParamsDef,
    ProcedureDef,
    QueryDef,
    RecordDef,
    RefDef,
    StringDef,
    SubscriptionDef,
    TokenDef,
    UnionDef,
    UnknownDef,
)

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_FORMATS: Final[Mapping[str, Callable[[str], str]]] = {
    "at-identifier": syntax.validate_at_identifier,
    "at-uri": syntax.validate_at_uri,
    "cid": syntax.validate_cid_string,
    "datetime": syntax.validate_datetime,
    "did": syntax.validate_did,
    "handle": syntax.validate_handle,
    "language": syntax.validate_language,
    "nsid": syntax.validate_nsid,
    "record-key": syntax.validate_record_key,
    "tid": syntax.validate_tid,
    "uri": syntax.validate_uri,
}

_RECORD_KEY_CHECKS: Final[Mapping[str, Callable[[str], str]]] = {
    "tid": syntax.validate_tid,
    "nsid": syntax.validate_nsid,
}


class ValidationError(LexiconError):
    """Data does not match its schema; `path` locates the offending value."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class Resolver(Protocol):
    """Where references are looked up: a `Catalog`."""

    def find(self, ref: str) -> Def | None:
        """The definition a fully qualified reference names, or None."""
        ...


def validate_record(
    resolver: Resolver, collection: str, record: object, *, rkey: str | None = None
) -> None:
    """Check a record of `collection` (and its record key, when given) against its lexicon."""
    schema = resolver.find(collection)
    if not isinstance(schema, RecordDef):
        raise LexiconError(f"no record lexicon for collection {collection!r}")
    if not isinstance(record, dict):
        raise ValidationError("record", "must be an object")
    if record.get("$type") != collection:
        raise ValidationError("record/$type", f"must be {collection!r}")
    if rkey is not None:
        check_record_key(schema.key, rkey)
    _Walker(resolver).check_object(schema.record, record, "record", 0)


def check_record_key(key_type: str, rkey: str) -> None:
    """Check a record key against a record schema's `key` (`tid`, `nsid`, `any`, `literal:x`)."""
    try:
        syntax.validate_record_key(rkey)
        check = _RECORD_KEY_CHECKS.get(key_type)
        if check is not None:
            check(rkey)
    except ValueError as exc:
        raise ValidationError("rkey", str(exc)) from exc
    literal = key_type.removeprefix("literal:")
    if literal != key_type and rkey != literal:
        raise ValidationError("rkey", f"must be {literal!r}")


def validate_value(resolver: Resolver, schema: Def, value: object, path: str = "value") -> None:
    """Check any value against a data definition (a record definition checks its object)."""
    _Walker(resolver).value(schema, value, path, 0)


def validate_body(resolver: Resolver, body: BodyDef | None, value: object, path: str) -> None:
    """Check an XRPC input or output body; a body without a schema accepts anything."""
    if body is None:
        if value is not None:
            raise ValidationError(path, "this method has no body")
        return
    if body.schema is not None:
        _Walker(resolver).value(body.schema, value, path, 0)


def validate_params(resolver: Resolver, method: Def, params: Mapping[str, object]) -> None:
    """Check XRPC parameters, already converted to booleans, integers, strings and lists."""
    if not isinstance(method, QueryDef | ProcedureDef | SubscriptionDef):
        raise LexiconError("only queries, procedures and subscriptions take parameters")
    schema = method.parameters or ParamsDef(properties={})
    for name in schema.required:
        if name not in params:
            raise ValidationError(f"params/{name}", "is required")
    walker = _Walker(resolver)
    for name, prop in schema.properties.items():
        if name in params:
            walker.value(prop, params[name], f"params/{name}", 0)


class _Walker:
    __slots__ = ("resolver",)

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def value(self, schema: Def, value: object, path: str, depth: int) -> None:
        match schema:
            case ObjectDef():
                self.check_object(schema, value, path, depth)
            case RecordDef():
                self.check_object(schema.record, value, path, depth)
            case ArrayDef():
                self.check_array(schema, value, path, depth)
            case RefDef():
                self.value(self.resolve(schema.ref, path), value, path, depth)
            case UnionDef():
                self.check_union(schema, value, path, depth)
            case StringDef():
                _string(schema, value, path)
            case IntegerDef():
                _integer(schema, value, path)
            case BooleanDef():
                if not isinstance(value, bool):
                    raise ValidationError(path, "must be a boolean")
                if schema.const is not None and value != schema.const:
                    raise ValidationError(path, f"must be {schema.const}")
            case BytesDef():
                _bytes(schema, value, path)
            case CidLinkDef():
                if not isinstance(value, CID):
                    raise ValidationError(path, "must be a CID link")
            case BlobDef():
                _blob(schema, value, path)
            case UnknownDef():
                if not isinstance(value, dict) or value.get("$type") == "blob":
                    raise ValidationError(path, "must be an object (not a blob)")
            case TokenDef():
                if value != schema.name:
                    raise ValidationError(path, f"must be the token {schema.name!r}")
            case _:
                raise ValidationError(path, f"{type(schema).__name__} does not describe data")

    def resolve(self, ref: str, path: str) -> Def:
        schema = self.resolver.find(ref)
        if schema is None:
            raise ValidationError(path, f"schema {ref!r} is not in the catalog")
        return schema

    def check_object(self, schema: ObjectDef, value: object, path: str, depth: int) -> None:
        if not isinstance(value, dict):
            raise ValidationError(path, "must be an object")
        if depth >= MAX_DEPTH:
            raise ValidationError(path, "data is nested too deeply")
        for name in schema.required:
            if name not in value:
                raise ValidationError(f"{path}/{name}", "is required")
        for name, prop in schema.properties.items():
            if name not in value:
                continue
            item = value[name]
            if item is None and name in schema.nullable:
                continue
            self.value(prop, item, f"{path}/{name}", depth + 1)

    def check_array(self, schema: ArrayDef, value: object, path: str, depth: int) -> None:
        if not isinstance(value, list):
            raise ValidationError(path, "must be an array")
        if depth >= MAX_DEPTH:
            raise ValidationError(path, "data is nested too deeply")
        _check_size(path, len(value), schema.min_length, schema.max_length, "elements")
        for index, item in enumerate(value):
            self.value(schema.items, item, f"{path}/{index}", depth + 1)

    def check_union(self, schema: UnionDef, value: object, path: str, depth: int) -> None:
        if not isinstance(value, dict):
            raise ValidationError(path, "must be an object with a $type")
        type_name = value.get("$type")
        if not isinstance(type_name, str) or not type_name:
            raise ValidationError(path, "must have a $type string")
        ref = type_name.removesuffix("#main")
        if ref in schema.refs:
            self.value(self.resolve(ref, path), value, path, depth)
            return
        if schema.closed:
            raise ValidationError(path, f"$type {type_name!r} is not one of {list(schema.refs)}")
        known = self.resolver.find(ref)
        if isinstance(known, ObjectDef | RecordDef):
            self.value(known, value, path, depth)


def _string(schema: StringDef, value: object, path: str) -> None:
    if not isinstance(value, str):
        raise ValidationError(path, "must be a string")
    if schema.const is not None and value != schema.const:
        raise ValidationError(path, f"must be {schema.const!r}")
    if schema.enum is not None and value not in schema.enum:
        raise ValidationError(path, f"must be one of {list(schema.enum)}")
    # A code point takes one to four UTF-8 bytes and a grapheme at least one code point, so
    # most strings pass their bounds without being encoded or segmented.
    lo, hi = schema.min_length, schema.max_length
    if (lo is not None and len(value) < lo) or (hi is not None and len(value) * 4 > hi):
        size = len(value.encode("utf-8", "surrogatepass"))
        _check_size(path, size, lo, hi, "UTF-8 bytes")
    lo, hi = schema.min_graphemes, schema.max_graphemes
    if lo is not None or (hi is not None and len(value) > hi):
        _check_size(path, count_graphemes(value), lo, hi, "graphemes")
    if schema.format is not None:
        try:
            _FORMATS[schema.format](value)
        except ValueError as exc:
            raise ValidationError(path, f"invalid {schema.format}: {exc}") from exc


def _integer(schema: IntegerDef, value: object, path: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(path, "must be an integer")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValidationError(path, "is outside the 64-bit integer range")
    if schema.const is not None and value != schema.const:
        raise ValidationError(path, f"must be {schema.const}")
    if schema.enum is not None and value not in schema.enum:
        raise ValidationError(path, f"must be one of {list(schema.enum)}")
    if schema.minimum is not None and value < schema.minimum:
        raise ValidationError(path, f"must be at least {schema.minimum}")
    if schema.maximum is not None and value > schema.maximum:
        raise ValidationError(path, f"must be at most {schema.maximum}")


def _bytes(schema: BytesDef, value: object, path: str) -> None:
    if not isinstance(value, bytes):
        raise ValidationError(path, "must be bytes")
    _check_size(path, len(value), schema.min_length, schema.max_length, "bytes")


def _blob(schema: BlobDef, value: object, path: str) -> None:
    mime_type, size = _blob_fields(value, path)
    if schema.accept is not None and not any(
        mime_type_matches(pattern, mime_type) for pattern in schema.accept
    ):
        raise ValidationError(path, f"MIME type {mime_type!r} is not one of {list(schema.accept)}")
    if schema.max_size is not None and size is not None and size > schema.max_size:
        raise ValidationError(path, f"blob of {size} bytes is over {schema.max_size}")


def _blob_fields(value: object, path: str) -> tuple[str, int | None]:
    """The MIME type and size (None for a legacy blob) of a blob reference."""
    if isinstance(value, dict):
        mime_type = value.get("mimeType")
        if value.get("$type") == "blob":
            size = value.get("size")
            if (
                isinstance(value.get("ref"), CID)
                and isinstance(mime_type, str)
                and isinstance(size, int)
                and not isinstance(size, bool)
                and size >= 0
            ):
                return mime_type, size
        elif value.keys() == {"cid", "mimeType"} and isinstance(mime_type, str):
            cid = value["cid"]
            try:
                if isinstance(cid, str):
                    CID.from_str(cid)
                    return mime_type, None
            except DecodeError:
                pass
    raise ValidationError(path, "must be a blob reference")


def mime_type_matches(pattern: str, mime_type: str) -> bool:
    """Whether a MIME type matches an `accept` pattern (`*/*`, `image/*` or exact)."""
    if pattern == "*/*":
        return True
    mime_type = mime_type.lower()
    pattern = pattern.lower()
    if pattern.endswith("/*"):
        return mime_type.startswith(pattern[:-1]) and len(mime_type) > len(pattern) - 1
    return mime_type == pattern


def _check_size(path: str, size: int, low: int | None, high: int | None, unit: str) -> None:
    if low is not None and size < low:
        raise ValidationError(path, f"has {size} {unit}, fewer than {low}")
    if high is not None and size > high:
        raise ValidationError(path, f"has {size} {unit}, more than {high}")
