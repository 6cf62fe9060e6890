"""Parsing and checking lexicon schema documents (lexicon language version 1).

`parse_lexicon` turns the JSON of one schema file into immutable definitions, rejecting anything
the lexicon language does not allow: unknown types, constraints of the wrong type or out of
range, `required` names that are not properties, primary types not named `main`, and so on.
Unknown keys are ignored, as in the reference implementations, so newer schema files still load.
References are stored fully qualified: `nsid` for a `main` definition, `nsid#name` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from strata.core import syntax
from strata.core.errors import InvalidSyntax, LexiconError

LEXICON_VERSION: Final = 1

STRING_FORMATS: Final = frozenset(
    {
        "at-identifier",
        "at-uri",
        "cid",
        "datetime",
        "did",
        "handle",
        "language",
        "nsid",
        "record-key",
        "tid",
        "uri",
    }
)

_DEF_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_MIME_PATTERN: Final = re.compile(r"\*/\*|[A-Za-z0-9][\w.+-]*/(\*|[A-Za-z0-9][\w.+-]*)")
_REPO_ACTIONS: Final = frozenset({"create", "update", "delete"})
_ACCOUNT_ATTRS: Final = frozenset({"email", "repo", "status"})
_IDENTITY_ATTRS: Final = frozenset({"*", "handle"})


@dataclass(frozen=True, slots=True)
class BooleanDef:
    """`boolean`."""

    default: bool | None = None
    const: bool | None = None


@dataclass(frozen=True, slots=True)
class IntegerDef:
    """`integer`, a signed 64-bit value."""

    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[int, ...] | None = None
    default: int | None = None
    const: int | None = None


@dataclass(frozen=True, slots=True)
class StringDef:
    """`string`; lengths count UTF-8 bytes, graphemes count extended grapheme clusters."""

    format: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_graphemes: int | None = None
    max_graphemes: int | None = None
    enum: tuple[str, ...] | None = None
    known_values: tuple[str, ...] = ()
    default: str | None = None
    const: str | None = None


@dataclass(frozen=True, slots=True)
class BytesDef:
    """`bytes`; lengths count bytes."""

    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class CidLinkDef:
    """`cid-link`."""


@dataclass(frozen=True, slots=True)
class BlobDef:
    """`blob`; `accept` holds MIME patterns such as `image/*`."""

    accept: tuple[str, ...] | None = None
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class UnknownDef:
    """`unknown`: any object."""


@dataclass(frozen=True, slots=True)
class RefDef:
    """`ref` to another definition, fully qualified."""

    ref: str


@dataclass(frozen=True, slots=True)
class UnionDef:
    """`union` of object definitions, told apart by `$type`."""

    refs: tuple[str, ...]
    closed: bool = False


@dataclass(frozen=True, slots=True)
class ArrayDef:
    """`array`."""

    items: FieldDef
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectDef:
    """`object`."""

    properties: Mapping[str, FieldDef]
    required: tuple[str, ...] = ()
    nullable: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TokenDef:
    """`token`: a named value with no data, used as a string equal to its full name."""

    name: str


@dataclass(frozen=True, slots=True)
class RecordDef:
    """`record`: `key` is `tid`, `nsid`, `any` or `literal:<value>`."""

    key: str
    record: ObjectDef


@dataclass(frozen=True, slots=True)
class ParamsDef:
    """`params` of an XRPC method: scalars or arrays of scalars."""

    properties: Mapping[str, FieldDef]
    required: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BodyDef:
    """Input or output body of an XRPC method."""

    encoding: str
    schema: ObjectDef | RefDef | UnionDef | None = None


@dataclass(frozen=True, slots=True)
class QueryDef:
    """`query`: an XRPC GET method."""

    parameters: ParamsDef | None = None
    output: BodyDef | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcedureDef:
    """`procedure`: an XRPC POST method."""

    parameters: ParamsDef | None = None
    input: BodyDef | None = None
    output: BodyDef | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionDef:
    """`subscription`: an event stream whose messages are a union."""

    parameters: ParamsDef | None = None
    message: UnionDef | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Permission:
    """One `permission` of a permission set; `fields` holds everything but `type`/`resource`."""

    resource: str
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PermissionSetDef:
    """`permission-set`: a named bundle of OAuth permissions."""

    permissions: tuple[Permission, ...]
    title: str | None = None
    detail: str | None = None


FieldDef: TypeAlias = (
    BooleanDef
    | IntegerDef
    | StringDef
    | BytesDef
    | CidLinkDef
    | BlobDef
    | UnknownDef
    | RefDef
    | UnionDef
    | ArrayDef
    | ObjectDef
)
"""A definition that can describe a property or an array item."""

Def: TypeAlias = (
    FieldDef | TokenDef | RecordDef | QueryDef | ProcedureDef | SubscriptionDef | PermissionSetDef
)
"""Any definition a lexicon document can name."""

PRIMARY_TYPES: Final = frozenset({"record", "query", "procedure", "subscription", "permission-set"})
_TOP_LEVEL_TYPES: Final = PRIMARY_TYPES | {
    "object",
    "array",
    "token",
    "string",
    "integer",
    "boolean",
    "bytes",
    "cid-link",
    "blob",
}
_FIELD_TYPES: Final = frozenset(
    {
        "boolean",
        "integer",
        "string",
        "bytes",
        "cid-link",
        "blob",
        "unknown",
        "ref",
        "union",
        "array",
        "object",
    }
)
_PARAM_TYPES: Final = frozenset({"boolean", "integer", "string", "unknown"})


@dataclass(frozen=True, slots=True)
class Lexicon:
    """One parsed schema document."""

    id: str
    defs: Mapping[str, Def]
    description: str | None = None
    revision: int | None = None


def parse_lexicon(doc: object) -> Lexicon:
    """Parse and check a lexicon document (decoded JSON); raise `LexiconError` if invalid."""
    top = _Node(doc, "lexicon")
    version = top.data.get("lexicon")
    if type(version) is not int or version != LEXICON_VERSION:
        raise top.fail(f"unsupported lexicon language version: {version!r}")
    nsid = top.req_str("id")
    try:
        syntax.validate_nsid(nsid)
    except InvalidSyntax as exc:
        raise top.fail(f"id is not a valid NSID: {exc}") from exc
    description = top.opt_str("description")
    revision = top.opt_int("revision", minimum=0)
    defs_node = top.req_node("defs")
    defs: dict[str, Def] = {}
    for name, value in defs_node.data.items():
        where = f"{nsid}#{name}"
        if not isinstance(name, str) or not _DEF_NAME.fullmatch(name):
            raise LexiconError(f"{where}: invalid definition name")
        node = _Node(value, where)
        kind = node.type_name()
        if kind not in _TOP_LEVEL_TYPES:
            raise node.fail(f"type {kind!r} cannot be a named definition")
        if kind in PRIMARY_TYPES and name != "main":
            raise node.fail(f"a {kind} definition must be named 'main'")
        defs[name] = _parse_def(node, kind, nsid, name)
    return Lexicon(id=nsid, defs=defs, description=description, revision=revision)


def qualify_ref(ref: str, base: str) -> str:
    """The fully qualified form of a reference found in document `base`.

    `#name` is local to `base`; a `#main` suffix is dropped so each target has one spelling.
    """
    nsid, sep, name = ref.partition("#")
    if sep and not _DEF_NAME.fullmatch(name):
        raise LexiconError(f"invalid definition name in reference {ref!r}")
    if not nsid:
        nsid = base
    elif nsid != base:
        try:
            syntax.validate_nsid(nsid)
        except InvalidSyntax as exc:
            raise LexiconError(f"invalid reference {ref!r}: {exc}") from exc
    return nsid if not sep or name == "main" else f"{nsid}#{name}"


class _Node:
    """A JSON object inside a schema, with its location for error messages."""

    __slots__ = ("data", "where")

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise LexiconError(f"{where}: must be an object")
        self.data: dict[str, object] = data
        self.where = where

    def fail(self, message: str) -> LexiconError:
        return LexiconError(f"{self.where}: {message}")

    def type_name(self) -> str:
        kind = self.data.get("type")
        if not isinstance(kind, str):
            raise self.fail("missing 'type'")
        return kind

    def opt_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"'{key}' must be a string")
        return value

    def req_str(self, key: str) -> str:
        value = self.opt_str(key)
        if not value:
            raise self.fail(f"'{key}' must be a non-empty string")
        return value

    def opt_bool(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"'{key}' must be a boolean")
        return value

    def opt_int(self, key: str, *, minimum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if type(value) is not int:
            raise self.fail(f"'{key}' must be an integer")
        if minimum is not None and value < minimum:
            raise self.fail(f"'{key}' must be at least {minimum}")
        return value

    def opt_str_list(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"'{key}' must be a list of strings")
        return tuple(value)

    def opt_int_list(self, key: str) -> tuple[int, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            raise self.fail(f"'{key}' must be a list of integers")
        return tuple(value)

    def opt_node(self, key: str) -> _Node | None:
        value = self.data.get(key)
        return None if value is None else _Node(value, f"{self.where}/{key}")

    def req_node(self, key: str) -> _Node:
        node = self.opt_node(key)
        if node is None:
            raise self.fail(f"missing '{key}'")
        return node


def _parse_def(node: _Node, kind: str, base: str, name: str) -> Def:
    if kind not in _FIELD_TYPES:
        node.opt_str("description")
    match kind:
        case "record":
            return _parse_record(node, base)
        case "query":
            return QueryDef(
                parameters=_parse_params(node.opt_node("parameters"), base),
                output=_parse_body(node.opt_node("output"), base),
                errors=_parse_errors(node),
            )
        case "procedure":
            return ProcedureDef(
                parameters=_parse_params(node.opt_node("parameters"), base),
                input=_parse_body(node.opt_node("input"), base),
                output=_parse_body(node.opt_node("output"), base),
                errors=_parse_errors(node),
            )
        case "subscription":
            return _parse_subscription(node, base)
        case "permission-set":
            return _parse_permission_set(node)
        case "token":
            return TokenDef(name=base if name == "main" else f"{base}#{name}")
        case _:
            return _parse_field(node, kind, base)


def _parse_field(node: _Node, kind: str, base: str) -> FieldDef:
    node.opt_str("description")
    match kind:
        case "boolean":
            default, const = node.opt_bool("default"), node.opt_bool("const")
            _not_both(node, default, const)
            return BooleanDef(default=default, const=const)
        case "integer":
            return _parse_integer(node)
        case "string":
            return _parse_string(node)
        case "bytes":
            min_length, max_length = _bounds(node, "minLength", "maxLength")
            return BytesDef(min_length=min_length, max_length=max_length)
        case "cid-link":
            return CidLinkDef()
        case "blob":
            accept = node.opt_str_list("accept")
            for pattern in accept or ():
                if not _MIME_PATTERN.fullmatch(pattern):
                    raise node.fail(f"invalid MIME pattern in 'accept': {pattern!r}")
            return BlobDef(accept=accept, max_size=node.opt_int("maxSize", minimum=1))
        case "unknown":
            return UnknownDef()
        case "ref":
            return RefDef(ref=_qualify(node, node.req_str("ref"), base))
        case "union":
            return _parse_union(node, base)
        case "array":
            min_length, max_length = _bounds(node, "minLength", "maxLength")
            items = node.req_node("items")
            items_kind = items.type_name()
            if items_kind not in _FIELD_TYPES:
                raise items.fail(f"type {items_kind!r} is not allowed for array items")
            return ArrayDef(
                items=_parse_field(items, items_kind, base),
                min_length=min_length,
                max_length=max_length,
            )
        case "object":
            return _parse_object(node, base)
        case _:
            raise node.fail(f"type {kind!r} is not allowed here")


def _parse_integer(node: _Node) -> IntegerDef:
    minimum, maximum = node.opt_int("minimum"), node.opt_int("maximum")
    if minimum is not None and maximum is not None and maximum < minimum:
        raise node.fail("'maximum' is below 'minimum'")
    enum = node.opt_int_list("enum")
    if enum is not None and not enum:
        raise node.fail("'enum' must not be empty")
    default, const = node.opt_int("default"), node.opt_int("const")
    _not_both(node, default, const)
    for key, value in (("default", default), ("const", const)):
        if value is None:
            continue
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise node.fail(f"'{key}' is outside 'minimum'..'maximum'")
        if enum is not None and value not in enum:
            raise node.fail(f"'{key}' is not in 'enum'")
    return IntegerDef(minimum=minimum, maximum=maximum, enum=enum, default=default, const=const)


def _parse_string(node: _Node) -> StringDef:
    fmt = node.opt_str("format")
    if fmt is not None and fmt not in STRING_FORMATS:
        raise node.fail(f"unknown string format {fmt!r}")
    min_length, max_length = _bounds(node, "minLength", "maxLength")
    min_graphemes, max_graphemes = _bounds(node, "minGraphemes", "maxGraphemes")
    enum = node.opt_str_list("enum")
    if enum is not None and not enum:
        raise node.fail("'enum' must not be empty")
    default, const = node.opt_str("default"), node.opt_str("const")
    _not_both(node, default, const)
    for key, value in (("default", default), ("const", const)):
        if value is not None and enum is not None and value not in enum:
            raise node.fail(f"'{key}' is not in 'enum'")
    return StringDef(
        format=fmt,
        min_length=min_length,
        max_length=max_length,
        min_graphemes=min_graphemes,
        max_graphemes=max_graphemes,
        enum=enum,
        known_values=node.opt_str_list("knownValues") or (),
        default=default,
        const=const,
    )


def _parse_union(node: _Node, base: str) -> UnionDef:
    refs = node.opt_str_list("refs")
    if refs is None:
        raise node.fail("missing 'refs'")
    full = tuple(_qualify(node, ref, base) for ref in refs)
    if len(set(full)) != len(full):
        raise node.fail("duplicate entries in 'refs'")
    return UnionDef(refs=full, closed=bool(node.opt_bool("closed")))


def _parse_object(node: _Node, base: str) -> ObjectDef:
    props_node = node.req_node("properties")
    properties: dict[str, FieldDef] = {}
    for key, value in props_node.data.items():
        if not key:
            raise props_node.fail("empty property name")
        prop = _Node(value, f"{props_node.where}/{key}")
        kind = prop.type_name()
        if kind not in _FIELD_TYPES:
            raise prop.fail(f"type {kind!r} is not allowed for a property")
        properties[key] = _parse_field(prop, kind, base)
    required = _names_of(node, "required", properties)
    nullable = _names_of(node, "nullable", properties)
    return ObjectDef(properties=properties, required=required, nullable=frozenset(nullable))


def _parse_record(node: _Node, base: str) -> RecordDef:
    key = node.req_str("key")
    if key.startswith("literal:"):
        try:
            syntax.validate_record_key(key.removeprefix("literal:"))
        except InvalidSyntax as exc:
            raise node.fail(f"invalid literal record key: {exc}") from exc
    elif key not in ("tid", "nsid", "any"):
        raise node.fail(f"invalid record key type {key!r}")
    record = node.req_node("record")
    if record.data.get("type") != "object":
        raise record.fail("a record schema must be of type 'object'")
    return RecordDef(key=key, record=_parse_object(record, base))


def _parse_params(node: _Node | None, base: str) -> ParamsDef | None:
    if node is None:
        return None
    if node.data.get("type") != "params":
        raise node.fail("parameters must be of type 'params'")
    node.opt_str("description")
    props_node = node.req_node("properties")
    properties: dict[str, FieldDef] = {}
    for key, value in props_node.data.items():
        if not key:
            raise props_node.fail("empty parameter name")
        prop = _Node(value, f"{props_node.where}/{key}")
        kind = prop.type_name()
        if kind == "array":
            items = prop.req_node("items")
            if items.type_name() not in _PARAM_TYPES:
                raise items.fail("parameter arrays must hold boolean, integer, string or unknown")
        elif kind not in _PARAM_TYPES:
            raise prop.fail("parameters must be boolean, integer, string, unknown or arrays")
        properties[key] = _parse_field(prop, kind, base)
    return ParamsDef(properties=properties, required=_names_of(node, "required", properties))


def _parse_body(node: _Node | None, base: str) -> BodyDef | None:
    if node is None:
        return None
    node.opt_str("description")
    encoding = node.req_str("encoding")
    schema_node = node.opt_node("schema")
    if schema_node is None:
        return BodyDef(encoding=encoding)
    schema_node.opt_str("description")
    schema: ObjectDef | RefDef | UnionDef
    match schema_node.type_name():
        case "object":
            schema = _parse_object(schema_node, base)
        case "ref":
            schema = RefDef(ref=_qualify(schema_node, schema_node.req_str("ref"), base))
        case "union":
            schema = _parse_union(schema_node, base)
        case _:
            raise schema_node.fail("a body schema must be an object, ref or union")
    return BodyDef(encoding=encoding, schema=schema)


def _parse_errors(node: _Node) -> tuple[str, ...]:
    errors = node.data.get("errors")
    if errors is None:
        return ()
    if not isinstance(errors, list):
        raise node.fail("'errors' must be a list")
    names = []
    for i, item in enumerate(errors):
        error = _Node(item, f"{node.where}/errors/{i}")
        error.opt_str("description")
        names.append(error.req_str("name"))
    return tuple(names)


def _parse_subscription(node: _Node, base: str) -> SubscriptionDef:
    message: UnionDef | None = None
    message_node = node.opt_node("message")
    if message_node is not None:
        message_node.opt_str("description")
        schema = message_node.req_node("schema")
        if schema.type_name() != "union":
            raise schema.fail("a message schema must be a union")
        schema.opt_str("description")
        message = _parse_union(schema, base)
    return SubscriptionDef(
        parameters=_parse_params(node.opt_node("parameters"), base),
        message=message,
        errors=_parse_errors(node),
    )


def _parse_permission_set(node: _Node) -> PermissionSetDef:
    for key in ("title:lang", "detail:lang"):
        langs = node.opt_node(key)
        for lang, text in (langs.data if langs else {}).items():
            try:
                syntax.validate_language(lang)
            except InvalidSyntax as exc:
                raise node.fail(f"invalid language in '{key}': {exc}") from exc
            if not isinstance(text, str):
                raise node.fail(f"values of '{key}' must be strings")
    raw = node.data.get("permissions")
    if not isinstance(raw, list):
        raise node.fail("'permissions' must be a list")
    permissions = tuple(
        _parse_permission(_Node(item, f"{node.where}/permissions/{i}"))
        for i, item in enumerate(raw)
    )
    return PermissionSetDef(
        permissions=permissions, title=node.opt_str("title"), detail=node.opt_str("detail")
    )


def _parse_permission(node: _Node) -> Permission:
    if node.data.get("type") != "permission":
        raise node.fail("must be of type 'permission'")
    resource = node.req_str("resource")
    for key, value in node.data.items():
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int) for v in items):
            raise node.fail(f"'{key}' must be a string, integer, boolean or a list of those")
    action = node.data.get("action")
    actions = (action,) if isinstance(action, str) else node.opt_str_list("action") or ()
    match resource:
        case "repo":
            for collection in _required_list(node, "collection"):
                if collection != "*":
                    _check_syntax(node, syntax.validate_nsid, collection)
            if not set(actions) <= _REPO_ACTIONS:
                raise node.fail(f"unsupported repo action in {list(actions)}")
        case "rpc":
            _check_rpc(node)
        case "blob":
            for pattern in _required_list(node, "accept"):
                if not _MIME_PATTERN.fullmatch(pattern):
                    raise node.fail(f"invalid MIME pattern in 'accept': {pattern!r}")
        case "account" | "identity":
            allowed = _ACCOUNT_ATTRS if resource == "account" else _IDENTITY_ATTRS
            verbs = ("read", "manage") if resource == "account" else ("submit", "manage")
            if node.opt_str("attr") not in allowed:
                raise node.fail(f"{resource} permission needs 'attr' in {sorted(allowed)}")
            if len(actions) > 1 or (actions and actions[0] not in verbs):
                raise node.fail(f"{resource} permission 'action' must be one of {verbs}")
        case _:
            raise node.fail(f"unsupported permission resource {resource!r}")
    fields = {k: v for k, v in node.data.items() if k not in ("type", "resource")}
    return Permission(resource=resource, fields=fields)


def _check_rpc(node: _Node) -> None:
    aud = node.opt_str("aud")
    inherit = bool(node.opt_bool("inheritAud"))
    for lxm in _required_list(node, "lxm"):
        if lxm == "*":
            if aud == "*":
                raise node.fail("'lxm' and 'aud' cannot both be '*'")
        else:
            _check_syntax(node, syntax.validate_nsid, lxm)
    if inherit == (aud is not None):
        raise node.fail("an rpc permission needs exactly one of 'aud' and 'inheritAud'")
    if aud is not None and aud != "*":
        did, sep, service = aud.partition("#")
        if not sep or not service:
            raise node.fail("'aud' must be '*' or a service reference like did:web:x#svc")
        _check_syntax(node, syntax.validate_did, did)


def _required_list(node: _Node, key: str) -> tuple[str, ...]:
    values = node.opt_str_list(key)
    if not values:
        raise node.fail(f"'{key}' must be a non-empty list of strings")
    return values


def _check_syntax(node: _Node, check: Callable[[str], str], value: str) -> None:
    try:
        check(value)
    except InvalidSyntax as exc:
        raise node.fail(str(exc)) from exc


def _qualify(node: _Node, ref: str, base: str) -> str:
    try:
        return qualify_ref(ref, base)
    except LexiconError as exc:
        raise node.fail(str(exc)) from exc


def _bounds(node: _Node, low: str, high: str) -> tuple[int | None, int | None]:
    lo, hi = node.opt_int(low, minimum=0), node.opt_int(high, minimum=0)
    if lo is not None and hi is not None and hi < lo:
        raise node.fail(f"'{high}' is below '{low}'")
    return lo, hi


def _not_both(node: _Node, default: object, const: object) -> None:
    if default is not None and const is not None:
        raise node.fail("cannot have both 'default' and 'const'")


def _names_of(node: _Node, key: str, properties: Mapping[str, FieldDef]) -> tuple[str, ...]:
    names = node.opt_str_list(key) or ()
    for name in names:
        if name not in properties:
            raise node.fail(f"'{key}' names {name!r}, which is not a property")
    if len(set(names)) != len(names):
        raise node.fail(f"duplicate names in '{key}'")
    return names
