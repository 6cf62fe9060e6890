"""Lexicon schemas, validation, grapheme counting, the bundled catalog, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core.cbor import from_json
from strata.core.cid import CID
from strata.core.errors import LexiconError
from strata.core.lexicon import (
    Catalog,
    IntegerDef,
    ObjectDef,
    RecordDef,
    RefDef,
    StringDef,
    TokenDef,
    UnionDef,
    ValidationError,
    check_record_key,
    count_graphemes,
    mime_type_matches,
    parse_lexicon,
    qualify_ref,
    split_graphemes,
)

CID_A = CID.dag_cbor(b"a")
BLOB_CID = CID.raw(b"image bytes")
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
POST_URI = f"at://{DID}/app.bsky.feed.post/3k2yihcrp6f2c"
NOW = "2024-05-01T12:00:00.000Z"

# --- grapheme counting ----------------------------------------------------------------------

GRAPHEMES = [
    pytest.param("", 0, id="empty"),
    pytest.param("hello", 5, id="ascii"),
    pytest.param("a\r\nb", 3, id="crlf"),
    pytest.param("a\n\rb", 4, id="lfcr"),
    pytest.param("a\tb", 3, id="control"),
    pytest.param("e\u0301\u0302x", 2, id="combining-marks"),
    pytest.param("\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7", 2, id="two-flags"),
    pytest.param("\U0001f1e9\U0001f1ea\U0001f1eb", 2, id="flag-and-lone-indicator"),
    pytest.param("\U0001f469\u200d\U0001f469\u200d\U0001f466\u200d\U0001f466", 1, id="family"),
    pytest.param("\U0001f3f3\ufe0f\u200d\U0001f308", 1, id="rainbow-flag"),
    pytest.param("\u2764\ufe0f\u200d\U0001f525", 1, id="heart-on-fire"),
    pytest.param("\U0001f44d\U0001f3fd", 1, id="skin-tone"),
    pytest.param("1\ufe0f\u20e3", 1, id="keycap"),
    pytest.param(
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", 1, id="tag-flag"
    ),
    pytest.param("a\u200db", 2, id="zwj-between-letters"),
    pytest.param("\u1100\u1161\u11a8", 1, id="hangul-jamo"),
    pytest.param("\uac00\u11a8\uac01", 2, id="hangul-syllables"),
    pytest.param("\u0e01\u0e33", 1, id="thai-spacing-mark"),
    pytest.param("\u0600\u0661", 1, id="prepend"),
    # Unicode 15.0 rules, as the reference implementations use: no conjunct rule (GB9c).
    pytest.param("\u0915\u094d\u0937", 2, id="devanagari-virama"),
    pytest.param("\u00ad", 1, id="soft-hyphen"),
]


@pytest.mark.parametrize(("text", "expected"), GRAPHEMES)
def test_count_graphemes(text: str, expected: int) -> None:
    assert count_graphemes(text) == expected
    assert len(split_graphemes(text)) == expected


def test_split_graphemes() -> None:
    assert split_graphemes("a\U0001f44d\U0001f3fde\u0301\r\n") == [
        "a",
        "\U0001f44d\U0001f3fd",
        "e\u0301",
        "\r\n",
    ]


@given(st.text())
def test_split_graphemes_partitions_text(text: str) -> None:
    parts = split_graphemes(text)
    assert "".join(parts) == text
    assert all(parts)
    assert count_graphemes(text) == len(parts)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ascii_fast_path_agrees(text: str) -> None:
    assert count_graphemes(text) == len(split_graphemes(text))


# --- schema documents -----------------------------------------------------------------------


def _doc(defs: dict[str, Any], nsid: str = "com.example.test") -> dict[str, Any]:
    return {"lexicon": 1, "id": nsid, "defs": defs}


def _main(schema: dict[str, Any]) -> dict[str, Any]:
    return _doc({"main": schema})


def _record(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return _main(
        {"type": "record", "key": "tid", "record": {"type": "object", "properties": properties}}
        | extra
    )


def _prop(schema: dict[str, Any]) -> dict[str, Any]:
    return _record({"field": schema})


def _permissions(*permissions: dict[str, Any]) -> dict[str, Any]:
    perms = [{"type": "permission"} | p for p in permissions]
    return _main({"type": "permission-set", "permissions": perms})


INVALID_SCHEMAS = [
    pytest.param({"lexicon": 2, "id": "com.example.test", "defs": {}}, "version", id="version-2"),
    pytest.param({"lexicon": True, "id": "com.example.test", "defs": {}}, "version", id="bool-ver"),
    pytest.param({"lexicon": 1, "id": "com.example.test"}, "defs", id="no-defs"),
    pytest.param({"lexicon": 1, "id": "com.example.test", "defs": []}, "defs", id="defs-list"),
    pytest.param([], "must be an object", id="not-object"),
    pytest.param(_doc({"a#b": {"type": "string"}}), "definition name", id="bad-def-name"),
    pytest.param(_doc({"x": {"description": "no type"}}), "type", id="missing-type"),
    pytest.param(_doc({"x": {"type": "float"}}), "float", id="unknown-type"),
    pytest.param(_doc({"x": {"type": "params", "properties": {}}}), "named", id="named-params"),
    pytest.param(_doc({"x": {"type": "union", "refs": []}}), "named", id="named-union"),
    pytest.param(_doc({"x": {"type": "query"}}), "main", id="query-not-main"),
    pytest.param(_doc({"x": {"type": "string", "description": 3}}), "description", id="desc"),
    pytest.param(_prop({"type": "string", "format": "email"}), "format", id="string-format"),
    pytest.param(_prop({"type": "string", "minLength": 5, "maxLength": 2}), "below", id="len"),
    pytest.param(_prop({"type": "string", "maxLength": -1}), "at least 0", id="negative"),
    pytest.param(_prop({"type": "string", "maxLength": 1.5}), "integer", id="float-bound"),
    pytest.param(_prop({"type": "string", "maxLength": True}), "integer", id="bool-bound"),
    pytest.param(
        _prop({"type": "string", "minGraphemes": 3, "maxGraphemes": 1}), "below", id="graphemes"
    ),
    pytest.param(_prop({"type": "string", "default": "a", "const": "a"}), "both", id="def-const"),
    pytest.param(_prop({"type": "string", "enum": []}), "empty", id="empty-enum"),
    pytest.param(_prop({"type": "string", "enum": ["a"], "const": "b"}), "enum", id="const-enum"),
    pytest.param(_prop({"type": "string", "knownValues": [1]}), "strings", id="known-values"),
    pytest.param(_prop({"type": "string", "default": 1}), "string", id="string-default"),
    pytest.param(_prop({"type": "integer", "minimum": 3, "maximum": 1}), "below", id="int-range"),
    pytest.param(_prop({"type": "integer", "maximum": 3, "default": 4}), "outside", id="int-def"),
    pytest.param(_prop({"type": "integer", "enum": [1, 2], "const": 3}), "enum", id="int-enum"),
    pytest.param(_prop({"type": "integer", "enum": ["1"]}), "integers", id="int-enum-type"),
    pytest.param(_prop({"type": "boolean", "default": "yes"}), "boolean", id="bool-default"),
    pytest.param(_prop({"type": "bytes", "minLength": 3, "maxLength": 1}), "below", id="bytes"),
    pytest.param(_prop({"type": "blob", "accept": ["image"]}), "MIME", id="blob-accept"),
    pytest.param(_prop({"type": "blob", "accept": ["*/png"]}), "MIME", id="blob-accept-star"),
    pytest.param(_prop({"type": "blob", "maxSize": 0}), "maxSize", id="blob-size"),
    pytest.param(_prop({"type": "array"}), "items", id="array-no-items"),
    pytest.param(_prop({"type": "array", "items": {"type": "token"}}), "items", id="array-token"),
    pytest.param(_prop({"type": "token"}), "property", id="token-property"),
    pytest.param(_prop({"type": "record", "key": "tid"}), "property", id="nested-record"),
    pytest.param(_prop({"type": "object"}), "properties", id="object-no-properties"),
    pytest.param(_prop({"type": "ref"}), "ref", id="ref-missing"),
    pytest.param(_prop({"type": "ref", "ref": "not an nsid"}), "reference", id="ref-syntax"),
    pytest.param(_prop({"type": "ref", "ref": "#a.b"}), "reference", id="ref-fragment"),
    pytest.param(_prop({"type": "union"}), "refs", id="union-no-refs"),
    pytest.param(_prop({"type": "union", "refs": ["#a", "#a"]}), "duplicate", id="union-dup"),
    pytest.param(_prop({"type": "union", "refs": ["#a"], "closed": 1}), "boolean", id="closed"),
    pytest.param(
        _main(
            {
                "type": "record",
                "key": "tid",
                "record": {"type": "object", "properties": {}, "required": ["x"]},
            }
        ),
        "not a property",
        id="required-unknown",
    ),
    pytest.param(
        _main(
            {
                "type": "record",
                "key": "tid",
                "record": {
                    "type": "object",
                    "properties": {"x": {"type": "string"}},
                    "nullable": ["y"],
                },
            }
        ),
        "not a property",
        id="nullable-unknown",
    ),
    pytest.param(
        _main(
            {
                "type": "record",
                "key": "tid",
                "record": {
                    "type": "object",
                    "properties": {"x": {"type": "string"}},
                    "required": ["x", "x"],
                },
            }
        ),
        "duplicate",
        id="required-duplicate",
    ),
    pytest.param(_record({}, key="uuid"), "record key", id="record-key-type"),
    pytest.param(_record({}, key="literal:.."), "literal", id="record-key-literal"),
    pytest.param(_main({"type": "record", "record": {"type": "object"}}), "key", id="no-key"),
    pytest.param(_main({"type": "record", "key": "tid"}), "record", id="no-record"),
    pytest.param(
        _main({"type": "query", "parameters": {"type": "object", "properties": {}}}),
        "params",
        id="params-type",
    ),
    pytest.param(
        _main(
            {
                "type": "query",
                "parameters": {"type": "params", "properties": {"p": {"type": "bytes"}}},
            }
        ),
        "parameters must be",
        id="params-bytes",
    ),
    pytest.param(
        _main(
            {
                "type": "query",
                "parameters": {
                    "type": "params",
                    "properties": {"p": {"type": "array", "items": {"type": "ref", "ref": "#x"}}},
                },
            }
        ),
        "parameter arrays",
        id="params-array-of-refs",
    ),
    pytest.param(
        _main({"type": "query", "output": {"schema": {"type": "object", "properties": {}}}}),
        "encoding",
        id="output-no-encoding",
    ),
    pytest.param(
        _main(
            {
                "type": "procedure",
                "input": {"encoding": "application/json", "schema": {"type": "string"}},
            }
        ),
        "body schema",
        id="input-string",
    ),
    pytest.param(
        _main({"type": "query", "errors": [{"description": "no name"}]}), "name", id="error-name"
    ),
    pytest.param(_main({"type": "query", "errors": {}}), "errors", id="errors-not-list"),
    pytest.param(
        _main(
            {
                "type": "subscription",
                "message": {"schema": {"type": "object", "properties": {}}},
            }
        ),
        "union",
        id="message-not-union",
    ),
    pytest.param(_main({"type": "permission-set"}), "permissions", id="no-permissions"),
    pytest.param(_permissions({"resource": "repo"}), "collection", id="repo-no-collection"),
    pytest.param(
        _permissions({"resource": "repo", "collection": ["x"]}), "NSID", id="repo-bad-nsid"
    ),
    pytest.param(
        _permissions({"resource": "repo", "collection": ["*"], "action": ["read"]}),
        "action",
        id="repo-action",
    ),
    pytest.param(_permissions({"resource": "rpc", "lxm": ["*"]}), "exactly one", id="rpc-no-aud"),
    pytest.param(
        _permissions({"resource": "rpc", "lxm": ["a.b.c"], "aud": "*", "inheritAud": True}),
        "exactly one",
        id="rpc-both-aud",
    ),
    pytest.param(
        _permissions({"resource": "rpc", "lxm": ["*"], "aud": "*"}), "both be", id="rpc-all"
    ),
    pytest.param(
        _permissions({"resource": "rpc", "lxm": ["a.b.c"], "aud": "did:web:x.com"}),
        "service",
        id="rpc-aud-not-service",
    ),
    pytest.param(_permissions({"resource": "blob"}), "accept", id="blob-no-accept"),
    pytest.param(_permissions({"resource": "account", "attr": "x"}), "attr", id="account-attr"),
    pytest.param(
        _permissions({"resource": "identity", "attr": "handle", "action": "read"}),
        "action",
        id="identity-action",
    ),
    pytest.param(_permissions({"resource": "space"}), "resource", id="unknown-resource"),
    pytest.param(
        _permissions({"resource": "blob", "accept": [{}]}), "must be a string", id="perm-value"
    ),
    pytest.param(
        _main({"type": "permission-set", "title:lang": {"??": "x"}, "permissions": []}),
        "language",
        id="title-lang",
    ),
    pytest.param(_main({"type": "permission-set", "permissions": [{}]}), "permission", id="perm"),
]


@pytest.mark.parametrize(("doc", "message"), INVALID_SCHEMAS)
def test_invalid_schema(doc: Any, message: str) -> None:
    with pytest.raises(LexiconError, match=message):
        parse_lexicon(doc)


def test_required_is_ignored_outside_objects() -> None:
    # Unknown keys are ignored, so a stray `required` on a record definition is harmless.
    parse_lexicon(_record({}, required=["x"]))


VALID_SCHEMAS = [
    pytest.param(_doc({}), id="no-defs"),
    pytest.param(_doc({"tok": {"type": "token"}, "n": {"type": "integer"}}), id="token"),
    pytest.param(_record({}, key="literal:self"), id="literal-key"),
    pytest.param(_record({}, key="nsid"), id="nsid-key"),
    pytest.param(_record({}, key="any", extraField={"ignored": True}), id="unknown-key"),
    pytest.param(
        _main(
            {
                "type": "query",
                "parameters": {
                    "type": "params",
                    "required": ["q"],
                    "properties": {
                        "q": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "output": {"encoding": "application/json"},
                "errors": [{"name": "NotFound"}],
            }
        ),
        id="query",
    ),
    pytest.param(
        _main(
            {
                "type": "procedure",
                "input": {"encoding": "*/*"},
                "output": {
                    "encoding": "application/json",
                    "schema": {"type": "ref", "ref": "com.example.other#thing"},
                },
            }
        ),
        id="procedure",
    ),
    pytest.param(
        _main({"type": "subscription", "message": {"schema": {"type": "union", "refs": []}}}),
        id="subscription",
    ),
    pytest.param(
        _permissions(
            {"resource": "repo", "collection": ["*"], "action": "create"},
            {"resource": "blob", "accept": ["image/*", "*/*"]},
            {"resource": "account", "attr": "email", "action": "read"},
            {"resource": "identity", "attr": "*"},
            {"resource": "rpc", "lxm": ["com.example.get"], "aud": "did:web:api.example.com#svc"},
        ),
        id="permissions",
    ),
]


@pytest.mark.parametrize("doc", VALID_SCHEMAS)
def test_valid_schema(doc: dict[str, Any]) -> None:
    assert parse_lexicon(doc).id == doc["id"]


def test_parsed_definitions() -> None:
    doc = parse_lexicon(
        _doc(
            {
                "main": {
                    "type": "record",
                    "key": "tid",
                    "record": {
                        "type": "object",
                        "required": ["a"],
                        "nullable": ["b"],
                        "properties": {
                            "a": {"type": "string", "maxGraphemes": 3, "knownValues": ["x"]},
                            "b": {"type": "ref", "ref": "#thing"},
                            "c": {"type": "union", "refs": ["#thing", "com.example.other#main"]},
                            "d": {"type": "integer", "default": 2, "minimum": 1},
                        },
                    },
                },
                "thing": {"type": "object", "properties": {}},
                "tok": {"type": "token"},
            }
        )
    )
    main = doc.defs["main"]
    assert isinstance(main, RecordDef)
    assert main.key == "tid"
    record = main.record
    assert record.required == ("a",)
    assert record.nullable == frozenset({"b"})
    assert record.properties["a"] == StringDef(max_graphemes=3, known_values=("x",))
    assert record.properties["b"] == RefDef("com.example.test#thing")
    assert record.properties["c"] == UnionDef(("com.example.test#thing", "com.example.other"))
    assert record.properties["d"] == IntegerDef(minimum=1, default=2)
    assert doc.defs["thing"] == ObjectDef(properties={})
    assert doc.defs["tok"] == TokenDef("com.example.test#tok")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("#thing", "com.example.test#thing"),
        ("#main", "com.example.test"),
        ("com.example.other", "com.example.other"),
        ("com.example.other#main", "com.example.other"),
        ("com.example.other#x", "com.example.other#x"),
    ],
)
def test_qualify_ref(ref: str, expected: str) -> None:
    assert qualify_ref(ref, "com.example.test") == expected


@pytest.mark.parametrize("ref", ["#", "bad#x", "com.example.other#", "#a#b"])
def test_qualify_ref_rejects(ref: str) -> None:
    with pytest.raises(LexiconError):
        qualify_ref(ref, "com.example.test")


# --- validation -----------------------------------------------------------------------------

TEST_DOC: dict[str, Any] = _doc(
    {
        "main": {
            "type": "record",
            "key": "literal:only",
            "record": {
                "type": "object",
                "required": ["name", "maybe"],
                "nullable": ["maybe"],
                "properties": {
                    "name": {"type": "string", "minLength": 2, "maxLength": 8},
                    "title": {"type": "string", "maxGraphemes": 3},
                    "maybe": {"type": "integer"},
                    "flag": {"type": "boolean", "const": True},
                    "count": {"type": "integer", "minimum": -5, "maximum": 5},
                    "tok": {"type": "ref", "ref": "#tok"},
                    "open": {"type": "union", "refs": ["#point", "com.example.other"]},
                    "closed": {"type": "union", "refs": ["#point"], "closed": True},
                    "any": {"type": "unknown"},
                    "link": {"type": "cid-link"},
                    "data": {"type": "bytes", "maxLength": 4},
                    "image": {"type": "blob", "accept": ["image/*"], "maxSize": 100},
                    "file": {"type": "blob"},
                    "tree": {"type": "ref", "ref": "#node"},
                    "grid": {
                        "type": "array",
                        "maxLength": 2,
                        "items": {"type": "array", "items": {"type": "integer"}},
                    },
                },
            },
        },
        "point": {
            "type": "object",
            "required": ["x"],
            "properties": {"x": {"type": "integer"}},
        },
        "node": {
            "type": "object",
            "properties": {"child": {"type": "ref", "ref": "#node"}},
        },
        "tok": {"type": "token"},
        "word": {"type": "string", "enum": ["yes", "no"]},
    }
)

OTHER_DOC: dict[str, Any] = _doc(
    {
        "main": {
            "type": "object",
            "required": ["y"],
            "properties": {"y": {"type": "string"}},
        },
        "method": {"type": "integer"},
    },
    nsid="com.example.other",
)

METHODS_DOC: dict[str, Any] = _doc(
    {
        "main": {
            "type": "procedure",
            "parameters": {
                "type": "params",
                "required": ["limit"],
                "properties": {
                    "limit": {"type": "integer", "maximum": 100},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
            "input": {
                "encoding": "application/json",
                "schema": {"type": "ref", "ref": "com.example.other"},
            },
            "output": {"encoding": "application/json"},
        },
    },
    nsid="com.example.methods",
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    catalog = Catalog()
    for doc in (TEST_DOC, OTHER_DOC, METHODS_DOC):
        catalog.add(doc)
    return catalog


def _rec(**fields: Any) -> dict[str, Any]:
    return {"$type": "com.example.test", "name": "ab", "maybe": None} | fields


def _blob(mime_type: str = "image/png", size: int = 10) -> dict[str, Any]:
    return {"$type": "blob", "ref": BLOB_CID, "mimeType": mime_type, "size": size}


VALID_RECORDS = [
    pytest.param(_rec(), id="minimal"),
    pytest.param(_rec(maybe=3), id="nullable-set"),
    pytest.param(_rec(name="\u00e9\u00e9\u00e9\u00e9"), id="multibyte-8-bytes"),
    pytest.param(_rec(title="\U0001f469\u200d\U0001f469\u200d\U0001f466" * 3), id="emoji"),
    pytest.param(_rec(title="e\u0301" * 3), id="combining-marks"),
    pytest.param(_rec(flag=True, count=-5), id="const-and-range"),
    pytest.param(_rec(tok="com.example.test#tok"), id="token"),
    pytest.param(_rec(open={"$type": "com.example.test#point", "x": 1}), id="union-member"),
    pytest.param(_rec(open={"$type": "com.example.test#point#main", "x": 1}), id="odd-type"),
    pytest.param(_rec(open={"$type": "com.example.other#main", "y": "z"}), id="explicit-main"),
    pytest.param(_rec(open={"$type": "com.example.unlisted", "q": 1}), id="open-unknown"),
    pytest.param(_rec(closed={"$type": "com.example.test#point", "x": 1}), id="closed"),
    pytest.param(_rec(any={"$type": "anything", "v": [1.5]}), id="unknown-object"),
    pytest.param(_rec(link=CID_A, data=b"\x00\x01"), id="cid-and-bytes"),
    pytest.param(_rec(image=_blob(size=100)), id="blob"),
    pytest.param(_rec(image={"cid": str(BLOB_CID), "mimeType": "image/jpeg"}), id="legacy-blob"),
    pytest.param(_rec(file=_blob("application/octet-stream", 10**9)), id="blob-any-type"),
    pytest.param(_rec(tree={"child": {"child": {}}}), id="recursive"),
    pytest.param(_rec(grid=[[1, 2], []]), id="nested-arrays"),
    pytest.param(_rec(extra={"not": "in schema"}), id="extra-property"),
]


@pytest.mark.parametrize("record", VALID_RECORDS)
def test_valid_record(catalog: Catalog, record: dict[str, Any]) -> None:
    catalog.validate_record("com.example.test", record, rkey="only")


INVALID_RECORDS = [
    pytest.param(_rec(name="a"), "record/name", id="too-short"),
    pytest.param(_rec(name="abcdefghi"), "record/name", id="too-long"),
    pytest.param(_rec(name="\u00e9\u00e9\u00e9\u00e9\u00e9"), "UTF-8 bytes", id="bytes-not-chars"),
    pytest.param(_rec(title="abcd"), "graphemes", id="graphemes"),
    pytest.param({"$type": "com.example.test", "name": "ab"}, "record/maybe", id="required-null"),
    pytest.param(_rec(name=None), "record/name", id="not-nullable"),
    pytest.param(_rec(flag=False), "record/flag", id="const"),
    pytest.param(_rec(count=1.0), "integer", id="float"),
    pytest.param(_rec(count=True), "integer", id="bool-as-int"),
    pytest.param(_rec(count=6), "at most", id="maximum"),
    pytest.param(_rec(count=-6), "at least", id="minimum"),
    pytest.param(_rec(maybe=2**63), "64-bit", id="int64"),
    pytest.param(_rec(tok="com.example.test#other"), "token", id="token"),
    pytest.param(_rec(open={"x": 1}), "\\$type", id="union-no-type"),
    pytest.param(_rec(open={"$type": 5}), "\\$type", id="union-type-not-string"),
    pytest.param(_rec(open={"$type": "com.example.test#point"}), "record/open/x", id="member"),
    pytest.param(_rec(open={"$type": "com.example.other"}), "record/open/y", id="main-member"),
    pytest.param(_rec(closed={"$type": "com.example.other", "y": "z"}), "not one of", id="closed"),
    pytest.param(_rec(any=True), "record/any", id="unknown-bool"),
    pytest.param(_rec(any=b"xx"), "record/any", id="unknown-bytes"),
    pytest.param(_rec(any=_blob()), "record/any", id="unknown-blob"),
    pytest.param(_rec(link=str(CID_A)), "CID", id="cid-as-string"),
    pytest.param(_rec(data=b"12345"), "record/data", id="bytes-long"),
    pytest.param(_rec(data="AAAA"), "bytes", id="bytes-as-string"),
    pytest.param(_rec(image=_blob(size=101)), "over", id="blob-size"),
    pytest.param(_rec(image=_blob("text/plain")), "MIME", id="blob-type"),
    pytest.param(_rec(image=_blob() | {"size": "10"}), "blob", id="blob-size-type"),
    pytest.param(_rec(image=_blob() | {"size": -1}), "blob", id="blob-size-negative"),
    pytest.param(_rec(image=_blob() | {"ref": str(BLOB_CID)}), "blob", id="blob-ref-string"),
    pytest.param(_rec(image={"cid": "nope", "mimeType": "image/png"}), "blob", id="legacy-bad"),
    pytest.param(
        _rec(image={"cid": str(BLOB_CID), "mimeType": "image/png", "x": 1}), "blob", id="legacy+"
    ),
    pytest.param(_rec(tree={"child": {"child": 3}}), "record/tree/child/child", id="deep-path"),
    pytest.param(_rec(grid=[[1], ["2"]]), "record/grid/1/0", id="array-path"),
    pytest.param(_rec(grid=[[], [], []]), "elements", id="array-long"),
    pytest.param({"name": "ab", "maybe": None}, "record/\\$type", id="no-type"),
    pytest.param(_rec() | {"$type": "com.example.other"}, "record/\\$type", id="wrong-type"),
]


@pytest.mark.parametrize(("record", "where"), INVALID_RECORDS)
def test_invalid_record(catalog: Catalog, record: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        catalog.validate_record("com.example.test", record)


def test_validation_error_fields(catalog: Catalog) -> None:
    with pytest.raises(ValidationError) as info:
        catalog.validate_record("com.example.test", _rec(count=9))
    assert info.value.path == "record/count"
    assert info.value.reason == "must be at most 5"
    assert str(info.value) == "record/count: must be at most 5"
    assert isinstance(info.value, LexiconError)


def test_record_must_be_an_object(catalog: Catalog) -> None:
    with pytest.raises(ValidationError, match="must be an object"):
        catalog.validate_record("com.example.test", ["not", "a", "record"])


@pytest.mark.parametrize("collection", ["com.example.nothing", "com.example.other", "bad"])
def test_record_without_record_lexicon(catalog: Catalog, collection: str) -> None:
    with pytest.raises(LexiconError, match="no record lexicon"):
        catalog.validate_record(collection, {"$type": collection})


def test_deep_data_is_rejected(catalog: Catalog) -> None:
    tree: dict[str, Any] = {}
    for _ in range(300):
        tree = {"child": tree}
    with pytest.raises(ValidationError, match="too deeply"):
        catalog.validate_record("com.example.test", _rec(tree=tree))


def test_record_key(catalog: Catalog) -> None:
    catalog.validate_record("com.example.test", _rec(), rkey="only")
    with pytest.raises(ValidationError, match="rkey"):
        catalog.validate_record("com.example.test", _rec(), rkey="other")


@pytest.mark.parametrize(
    ("key_type", "rkey", "ok"),
    [
        ("tid", "3k2yihcrp6f2c", True),
        ("tid", "self", False),
        ("nsid", "com.example.thing", True),
        ("nsid", "thing", False),
        ("any", "anything-goes:here", True),
        ("any", "..", False),
        ("any", "has/slash", False),
        ("literal:self", "self", True),
        ("literal:self", "other", False),
    ],
)
def test_check_record_key(key_type: str, rkey: str, ok: bool) -> None:
    if ok:
        check_record_key(key_type, rkey)
    else:
        with pytest.raises(ValidationError):
            check_record_key(key_type, rkey)


def test_validate_any_definition(catalog: Catalog) -> None:
    catalog.validate("com.example.test#point", {"x": 1})
    catalog.validate("com.example.test#word", "yes")
    catalog.validate("com.example.test#main", _rec())
    with pytest.raises(ValidationError, match="value/x"):
        catalog.validate("com.example.test#point", {"x": "1"})
    with pytest.raises(ValidationError, match="one of"):
        catalog.validate("com.example.test#word", "maybe")
    with pytest.raises(LexiconError, match="no lexicon definition"):
        catalog.validate("com.example.test#missing", {})
    with pytest.raises(LexiconError, match="XRPC"):
        catalog.validate("com.example.methods", {})


def test_xrpc_bodies_and_params(catalog: Catalog) -> None:
    catalog.validate_params("com.example.methods", {"limit": 5, "tags": ["a", "b"]})
    catalog.validate_input("com.example.methods", {"y": "z"})
    catalog.validate_output("com.example.methods", b"any body at all")
    with pytest.raises(ValidationError, match="params/limit"):
        catalog.validate_params("com.example.methods", {})
    with pytest.raises(ValidationError, match="params/limit"):
        catalog.validate_params("com.example.methods", {"limit": 101})
    with pytest.raises(ValidationError, match="params/tags/0"):
        catalog.validate_params("com.example.methods", {"limit": 1, "tags": [1]})
    with pytest.raises(ValidationError, match="input/y"):
        catalog.validate_input("com.example.methods", {})
    with pytest.raises(LexiconError, match="not a procedure"):
        catalog.validate_input("com.example.other", {})
    with pytest.raises(LexiconError, match="not a query or procedure"):
        catalog.validate_output("com.example.test", {})
    with pytest.raises(LexiconError, match="parameters"):
        catalog.validate_params("com.example.test", {})


def test_method_without_body() -> None:
    catalog = Catalog()
    catalog.add(_main({"type": "query"}))
    catalog.validate_output("com.example.test", None)
    with pytest.raises(ValidationError, match="no body"):
        catalog.validate_output("com.example.test", {})
    catalog.validate_params("com.example.test", {"ignored": "extra"})


@pytest.mark.parametrize(
    ("pattern", "mime_type", "ok"),
    [
        ("*/*", "anything/here", True),
        ("image/*", "image/png", True),
        ("image/*", "IMAGE/PNG", True),
        ("image/*", "image/", False),
        ("image/*", "imagex/png", False),
        ("video/mp4", "video/mp4", True),
        ("video/mp4", "video/webm", False),
    ],
)
def test_mime_type_matches(pattern: str, mime_type: str, ok: bool) -> None:
    assert mime_type_matches(pattern, mime_type) is ok


# --- the catalog ----------------------------------------------------------------------------


def test_catalog_lookup(catalog: Catalog) -> None:
    assert isinstance(catalog.get("com.example.test"), RecordDef)
    assert catalog.get("com.example.test#main") is catalog.get("com.example.test")
    assert "com.example.test#point" in catalog
    assert "com.example.test#nope" not in catalog
    assert 3 not in catalog
    assert catalog.find("not an nsid at all") is None
    assert catalog.find("com.example.test#") is None
    assert len(catalog) == 3
    assert {doc.id for doc in catalog} == {
        "com.example.test",
        "com.example.other",
        "com.example.methods",
    }
    doc = catalog.document("com.example.other")
    assert doc is not None
    assert set(doc.defs) == {"main", "method"}
    with pytest.raises(LexiconError, match="already"):
        catalog.add(OTHER_DOC)


def test_catalog_accepts_parsed_lexicon() -> None:
    catalog = Catalog()
    lexicon = catalog.add(parse_lexicon(OTHER_DOC))
    assert catalog.document("com.example.other") is lexicon


def test_check_references() -> None:
    catalog = Catalog()
    catalog.add(TEST_DOC)
    with pytest.raises(LexiconError, match=r"com\.example\.other"):
        catalog.check_references()
    catalog.add(OTHER_DOC)
    catalog.check_references()


@pytest.mark.parametrize(
    ("field", "target", "message"),
    [
        ({"type": "union", "refs": ["com.example.target"]}, {"type": "string"}, "not an object"),
        ({"type": "ref", "ref": "com.example.target"}, {"type": "query"}, "does not describe"),
        ({"type": "ref", "ref": "com.example.target#x"}, {"type": "string"}, "not in the catalog"),
    ],
)
def test_check_references_kinds(
    field: dict[str, Any], target: dict[str, Any], message: str
) -> None:
    catalog = Catalog()
    catalog.add(_prop(field))
    catalog.add(_doc({"main": target}, nsid="com.example.target"))
    with pytest.raises(LexiconError, match=message):
        catalog.check_references()


def test_load_directory(tmp_path: Any) -> None:
    (tmp_path / "com" / "example").mkdir(parents=True)
    (tmp_path / "com" / "example" / "other.json").write_text(json.dumps(OTHER_DOC))
    (tmp_path / "com" / "example" / "test.json").write_text(json.dumps(TEST_DOC))
    (tmp_path / "README.md").write_text("not a schema")
    catalog = Catalog()
    loaded = catalog.load_directory(str(tmp_path))
    assert [doc.id for doc in loaded] == ["com.example.other", "com.example.test"]
    catalog.check_references()


def test_load_directory_errors(tmp_path: Any) -> None:
    with pytest.raises(LexiconError, match="not a directory"):
        Catalog().load_directory(tmp_path / "missing")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(LexiconError, match=r"broken\.json: not valid JSON"):
        Catalog().load_directory(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"lexicon": 1, "id": "x", "defs": {}}))
    with pytest.raises(LexiconError, match=r"broken\.json: .*NSID"):
        Catalog().load_directory(tmp_path)


# --- the bundled schemas --------------------------------------------------------------------

BUNDLED_RECORDS = [
    "app.bsky.actor.profile",
    "app.bsky.feed.generator",
    "app.bsky.feed.like",
    "app.bsky.feed.post",
    "app.bsky.feed.postgate",
    "app.bsky.feed.repost",
    "app.bsky.feed.threadgate",
    "app.bsky.graph.block",
    "app.bsky.graph.follow",
    "app.bsky.graph.list",
    "app.bsky.graph.listitem",
]


@pytest.fixture(scope="module")
def bundled() -> Catalog:
    return Catalog.bundled()


def test_bundled_catalog_loads(bundled: Catalog) -> None:
    ids = {doc.id for doc in bundled}
    assert ids >= {
        *BUNDLED_RECORDS,
        "app.bsky.richtext.facet",
        "app.bsky.embed.images",
        "app.bsky.embed.external",
        "app.bsky.embed.record",
        "app.bsky.embed.recordWithMedia",
        "app.bsky.embed.video",
        "app.bsky.embed.defs",
        "com.atproto.repo.strongRef",
        "com.atproto.label.defs",
    }
    for nsid in BUNDLED_RECORDS:
        assert isinstance(bundled.get(nsid), RecordDef), nsid
    bundled.check_references()


def _bundled_files() -> list[Any]:
    root = resources.files("strata") / "lexicons"
    found = []
    pending = [root]
    while pending:
        for entry in pending.pop().iterdir():
            if entry.is_dir():
                pending.append(entry)
            elif entry.name.endswith(".json"):
                found.append(entry)
    return sorted(found, key=str)


@pytest.mark.parametrize("file", _bundled_files(), ids=lambda f: f.name)
def test_bundled_file_is_valid_and_placed_by_nsid(file: Any) -> None:
    doc = json.loads(file.read_text(encoding="utf-8"))
    lexicon = parse_lexicon(doc)
    assert (
        str(file).replace("\\", "/").endswith("/lexicons/" + lexicon.id.replace(".", "/") + ".json")
    )


def _strong_ref() -> dict[str, Any]:
    return {"uri": POST_URI, "cid": str(CID_A)}


def _post(**fields: Any) -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": "hello", "createdAt": NOW} | fields


def _image(**fields: Any) -> dict[str, Any]:
    return {"image": _blob("image/jpeg", 500_000), "alt": "a cat"} | fields


TEXT = "hi @alice.example.com see https://example.com #cats"
FACETS = [
    {
        "index": {"byteStart": 3, "byteEnd": 21},
        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": DID}],
    },
    {
        "index": {"byteStart": 26, "byteEnd": 45},
        "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}],
    },
    {
        "index": {"byteStart": 46, "byteEnd": 51},
        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "cats"}],
    },
]

REAL_RECORDS = [
    pytest.param("app.bsky.feed.post", _post(), "3k2yihcrp6f2c", id="post"),
    pytest.param(
        "app.bsky.feed.post",
        _post(text=TEXT, facets=FACETS, langs=["en", "pt-BR"], tags=["caturday"]),
        "3k2yihcrp6f2c",
        id="post-facets",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            embed={
                "$type": "app.bsky.embed.images",
                "images": [
                    _image(aspectRatio={"width": 4, "height": 3}),
                    _image(alt=""),
                ],
            }
        ),
        None,
        id="post-images",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(reply={"root": _strong_ref(), "parent": _strong_ref()}),
        None,
        id="post-reply",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            embed={
                "$type": "app.bsky.embed.recordWithMedia",
                "record": {"$type": "app.bsky.embed.record", "record": _strong_ref()},
                "media": {
                    "$type": "app.bsky.embed.video",
                    "video": _blob("video/mp4", 20_000_000),
                    "captions": [{"lang": "en", "file": _blob("text/vtt", 1_000)}],
                    "aspectRatio": {"width": 16, "height": 9},
                },
            }
        ),
        None,
        id="post-quote-with-video",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            embed={
                "$type": "app.bsky.embed.external",
                "external": {
                    "uri": "https://example.com/article",
                    "title": "An article",
                    "description": "",
                    "thumb": _blob("image/png", 1_000),
                },
            },
            labels={"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": "nudity"}]},
        ),
        None,
        id="post-external-labels",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(embed={"$type": "com.example.future.embed", "anything": True}),
        None,
        id="post-open-union-future-embed",
    ),
    pytest.param(
        "app.bsky.feed.like",
        {"$type": "app.bsky.feed.like", "subject": _strong_ref(), "createdAt": NOW},
        None,
        id="like",
    ),
    pytest.param(
        "app.bsky.feed.repost",
        {
            "$type": "app.bsky.feed.repost",
            "subject": _strong_ref(),
            "createdAt": NOW,
            "via": _strong_ref(),
        },
        None,
        id="repost",
    ),
    pytest.param(
        "app.bsky.graph.follow",
        {"$type": "app.bsky.graph.follow", "subject": DID, "createdAt": NOW},
        None,
        id="follow",
    ),
    pytest.param(
        "app.bsky.graph.block",
        {"$type": "app.bsky.graph.block", "subject": DID, "createdAt": NOW},
        None,
        id="block",
    ),
    pytest.param(
        "app.bsky.graph.list",
        {
            "$type": "app.bsky.graph.list",
            "name": "Cats",
            "purpose": "app.bsky.graph.defs#curatelist",
            "createdAt": NOW,
        },
        None,
        id="list",
    ),
    pytest.param(
        "app.bsky.graph.listitem",
        {"$type": "app.bsky.graph.listitem", "subject": DID, "list": POST_URI, "createdAt": NOW},
        None,
        id="listitem",
    ),
    pytest.param(
        "app.bsky.actor.profile",
        {
            "$type": "app.bsky.actor.profile",
            "displayName": "Alice \U0001f408",
            "description": "I like cats",
            "avatar": _blob("image/jpeg", 100_000),
            "pinnedPost": _strong_ref(),
        },
        "self",
        id="profile",
    ),
    pytest.param(
        "app.bsky.feed.generator",
        {
            "$type": "app.bsky.feed.generator",
            "did": "did:web:feeds.example.com",
            "displayName": "Cats",
            "contentMode": "app.bsky.feed.defs#contentModeVideo",
            "createdAt": NOW,
        },
        "cats",
        id="generator",
    ),
    pytest.param(
        "app.bsky.feed.threadgate",
        {
            "$type": "app.bsky.feed.threadgate",
            "post": POST_URI,
            "allow": [
                {"$type": "app.bsky.feed.threadgate#mentionRule"},
                {"$type": "app.bsky.feed.threadgate#listRule", "list": POST_URI},
            ],
            "createdAt": NOW,
        },
        None,
        id="threadgate",
    ),
    pytest.param(
        "app.bsky.feed.postgate",
        {
            "$type": "app.bsky.feed.postgate",
            "post": POST_URI,
            "embeddingRules": [{"$type": "app.bsky.feed.postgate#disableRule"}],
            "createdAt": NOW,
        },
        None,
        id="postgate",
    ),
]


@pytest.mark.parametrize(("collection", "record", "rkey"), REAL_RECORDS)
def test_real_records_validate(
    bundled: Catalog, collection: str, record: dict[str, Any], rkey: str | None
) -> None:
    bundled.validate_record(collection, record, rkey=rkey)


def test_real_record_from_json(bundled: Catalog) -> None:
    record = from_json(
        {
            "$type": "app.bsky.feed.post",
            "text": "look",
            "createdAt": NOW,
            "embed": {
                "$type": "app.bsky.embed.images",
                "images": [
                    {
                        "alt": "",
                        "image": {
                            "$type": "blob",
                            "ref": {"$link": str(BLOB_CID)},
                            "mimeType": "image/webp",
                            "size": 1234,
                        },
                    }
                ],
            },
        }
    )
    bundled.validate_record("app.bsky.feed.post", record)


BAD_REAL_RECORDS = [
    pytest.param("app.bsky.feed.post", _post(text="a" * 301), "record/text", id="301-graphemes"),
    pytest.param(
        "app.bsky.feed.post", _post(text="\u00e9" * 1501), "UTF-8 bytes", id="over-3000-bytes"
    ),
    pytest.param(
        "app.bsky.feed.post",
        {"$type": "app.bsky.feed.post", "text": "hi"},
        "record/createdAt",
        id="missing-createdAt",
    ),
    pytest.param(
        "app.bsky.feed.post", _post(createdAt="yesterday"), "record/createdAt", id="bad-datetime"
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(embed={"$type": "app.bsky.embed.images", "images": [_image()] * 5}),
        "record/embed/images",
        id="five-images",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(embed={"$type": "app.bsky.embed.images", "images": [_image(alt=None)]}),
        "record/embed/images/0/alt",
        id="image-alt-null",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            embed={
                "$type": "app.bsky.embed.images",
                "images": [_image(aspectRatio={"width": 0, "height": 1})],
            }
        ),
        "record/embed/images/0/aspectRatio/width",
        id="aspect-ratio-zero",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            embed={"$type": "app.bsky.embed.images", "images": [_image(image=_blob("video/mp4"))]}
        ),
        "record/embed/images/0/image",
        id="image-not-image",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            embed={
                "$type": "app.bsky.embed.images",
                "images": [_image(image=_blob("image/png", 2_000_001))],
            }
        ),
        "over",
        id="image-too-big",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(embed={"images": [_image()]}),
        "record/embed",
        id="embed-without-type",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(embed={"$type": "app.bsky.embed.external", "images": [_image()]}),
        "record/embed/external",
        id="embed-wrong-shape-for-type",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(
            facets=[
                {
                    "index": {"byteStart": 0, "byteEnd": 1},
                    "features": [{"$type": "app.bsky.richtext.facet#mention", "did": "alice"}],
                }
            ]
        ),
        "record/facets/0/features/0/did",
        id="mention-not-did",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(facets=[{"index": {"byteStart": -1, "byteEnd": 1}, "features": []}]),
        "record/facets/0/index/byteStart",
        id="negative-byte-start",
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(reply={"root": _strong_ref(), "parent": {"uri": POST_URI}}),
        "record/reply/parent/cid",
        id="reply-without-cid",
    ),
    pytest.param(
        "app.bsky.feed.post", _post(langs=["en", "fr", "de", "es"]), "record/langs", id="4-langs"
    ),
    pytest.param(
        "app.bsky.feed.post",
        _post(labels={"values": [{"val": "x"}]}),
        "record/labels",
        id="labels-without-type",
    ),
    pytest.param(
        "app.bsky.graph.follow",
        {"$type": "app.bsky.graph.follow", "subject": "alice.example.com", "createdAt": NOW},
        "record/subject",
        id="follow-handle",
    ),
    pytest.param(
        "app.bsky.graph.list",
        {
            "$type": "app.bsky.graph.list",
            "name": "",
            "purpose": "app.bsky.graph.defs#modlist",
            "createdAt": NOW,
        },
        "record/name",
        id="list-empty-name",
    ),
    pytest.param(
        "app.bsky.actor.profile",
        {"$type": "app.bsky.actor.profile", "displayName": "x" * 65},
        "record/displayName",
        id="profile-long-name",
    ),
    pytest.param(
        "app.bsky.actor.profile",
        {"$type": "app.bsky.actor.profile", "avatar": _blob("image/gif")},
        "record/avatar",
        id="profile-gif-avatar",
    ),
    pytest.param(
        "app.bsky.feed.threadgate",
        {
            "$type": "app.bsky.feed.threadgate",
            "post": POST_URI,
            "allow": [{"$type": "app.bsky.feed.threadgate#listRule"}],
            "createdAt": NOW,
        },
        "record/allow/0/list",
        id="threadgate-list-rule",
    ),
]


@pytest.mark.parametrize(("collection", "record", "where"), BAD_REAL_RECORDS)
def test_bad_real_records_rejected(
    bundled: Catalog, collection: str, record: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError, match=where):
        bundled.validate_record(collection, record)


def test_post_grapheme_limit_counts_emoji_once(bundled: Catalog) -> None:
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f466\u200d\U0001f466"  # 25 UTF-8 bytes
    bundled.validate_record("app.bsky.feed.post", _post(text=family * 120))  # 3000 bytes
    with pytest.raises(ValidationError, match="UTF-8 bytes"):
        bundled.validate_record("app.bsky.feed.post", _post(text=family * 121))
    flag = "\U0001f1e9\U0001f1ea"
    bundled.validate_record("app.bsky.feed.post", _post(text=flag * 300))
    with pytest.raises(ValidationError, match="graphemes"):
        bundled.validate_record("app.bsky.feed.post", _post(text=flag * 301))


def test_bundled_rkeys(bundled: Catalog) -> None:
    profile = {"$type": "app.bsky.actor.profile"}
    bundled.validate_record("app.bsky.actor.profile", profile, rkey="self")
    with pytest.raises(ValidationError, match="rkey"):
        bundled.validate_record("app.bsky.actor.profile", profile, rkey="3k2yihcrp6f2c")
    with pytest.raises(ValidationError, match="rkey"):
        bundled.validate_record("app.bsky.feed.post", _post(), rkey="self")


def test_closed_union_rejects_unlisted_type() -> None:
    catalog = Catalog.bundled()
    catalog.add(
        _prop({"type": "union", "refs": ["app.bsky.embed.images"], "closed": True})
        | {"id": "com.example.closed"}
    )
    record = {
        "$type": "com.example.closed",
        "field": {"$type": "app.bsky.embed.external", "external": {}},
    }
    with pytest.raises(ValidationError, match="record/field: \\$type"):
        catalog.validate_record("com.example.closed", record)
    record["field"] = {"$type": "app.bsky.embed.images", "images": []}
    catalog.validate_record("com.example.closed", record)


# --- fuzzing --------------------------------------------------------------------------------

KEYS = [
    "$type", "text", "createdAt", "embed", "images", "image", "alt", "aspectRatio", "width",
    "height", "facets", "index", "features", "byteStart", "byteEnd", "did", "uri", "cid",
    "reply", "root", "parent", "subject", "labels", "values", "val", "langs", "tags", "ref",
    "mimeType", "size", "external", "record", "media", "video", "name", "maybe", "open",
    "closed", "any", "tree", "child", "grid", "count", "tok", "data", "link", "purpose",
]  # fmt: skip
TYPES = [
    "blob", "app.bsky.embed.images", "app.bsky.embed.record", "app.bsky.embed.recordWithMedia",
    "app.bsky.embed.external", "app.bsky.richtext.facet#mention", "app.bsky.richtext.facet#link",
    "com.atproto.label.defs#selfLabels", "com.example.test#point", "com.example.other",
    "com.example.test", "app.bsky.feed.post", "",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(TYPES),
    st.binary(max_size=8),
    st.just(CID_A),
    st.just(NOW),
    st.just(DID),
)
json_ish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), children, max_size=6
        ),
    ),
    max_leaves=30,
)
records = st.builds(
    lambda base, type_name: base | {"$type": type_name},
    st.dictionaries(st.sampled_from(KEYS), json_ish, max_size=8),
    st.sampled_from(TYPES),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    collection=st.sampled_from([*BUNDLED_RECORDS, "com.example.test", "com.example.missing"]),
    record=st.one_of(records, json_ish),
)
def test_fuzz_validate_record_raises_only_lexicon_errors(
    catalog: Catalog, bundled: Catalog, collection: str, record: Any
) -> None:
    target = catalog if collection.startswith("com.example") else bundled
    with contextlib.suppress(LexiconError):
        target.validate_record(collection, record)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    ref=st.sampled_from(
        [
            "app.bsky.embed.images",
            "app.bsky.embed.recordWithMedia",
            "app.bsky.richtext.facet",
            "com.atproto.label.defs#selfLabels",
            "app.bsky.graph.defs#listPurpose",
        ]
    ),
    value=json_ish,
)
def test_fuzz_validate_raises_only_lexicon_errors(bundled: Catalog, ref: str, value: Any) -> None:
    with contextlib.suppress(LexiconError):
        bundled.validate(ref, value)


SCHEMA_WORDS = [
    "type", "properties", "items", "refs", "ref", "required", "nullable", "key", "record",
    "format", "maxLength", "minLength", "maxGraphemes", "enum", "const", "default", "accept",
    "maxSize", "closed", "knownValues", "parameters", "input", "output", "encoding", "schema",
    "message", "errors", "name", "permissions", "resource", "collection", "lxm", "aud",
]  # fmt: skip
TYPE_NAMES = [
    "record", "query", "procedure", "subscription", "permission-set", "permission", "params",
    "object", "array", "token", "string", "integer", "boolean", "bytes", "cid-link", "blob",
    "union", "ref", "unknown", "#main", "com.example.test#x", "tid", "image/*", "did",
]  # fmt: skip
schema_ish = st.recursive(
    st.one_of(
        st.sampled_from(TYPE_NAMES),
        st.integers(-3, 3),
        st.booleans(),
        st.none(),
        st.text(max_size=4),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(SCHEMA_WORDS), children, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=300)
@given(defs=st.dictionaries(st.sampled_from(["main", "x", "y.z"]), schema_ish, max_size=3))
def test_fuzz_parse_lexicon_raises_only_lexicon_errors(defs: dict[str, Any]) -> None:
    with contextlib.suppress(LexiconError):
        parse_lexicon(_doc(defs))
