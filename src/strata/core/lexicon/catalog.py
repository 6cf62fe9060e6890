"""A set of lexicon documents, looked up by reference, that data is validated against."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from strata.core.errors import LexiconError
from strata.core.lexicon import validate
from strata.core.lexicon.schema import (
    ArrayDef,
    Def,
    Lexicon,
    ObjectDef,
    ProcedureDef,
    QueryDef,
    RecordDef,
    RefDef,
    SubscriptionDef,
    UnionDef,
    parse_lexicon,
)

_NOT_DATA = (QueryDef, ProcedureDef, SubscriptionDef)


class Catalog:
    """Lexicon documents by NSID. References are `nsid`, `nsid#name` or `nsid#main`."""

    def __init__(self) -> None:
        self._docs: dict[str, Lexicon] = {}

    @classmethod
    def bundled(cls) -> Catalog:
        """A catalog of the schema files shipped with Strata."""
        catalog = cls()
        catalog.load_directory(resources.files("strata") / "lexicons")
        return catalog

    def add(self, doc: Mapping[str, object] | Lexicon) -> Lexicon:
        """Add a document (parsed, or as decoded JSON, which is checked first)."""
        lexicon = doc if isinstance(doc, Lexicon) else parse_lexicon(doc)
        if lexicon.id in self._docs:
            raise LexiconError(f"lexicon {lexicon.id} is already in the catalog")
        self._docs[lexicon.id] = lexicon
        return lexicon

    def load_directory(self, path: str | os.PathLike[str] | Traversable) -> list[Lexicon]:
        """Add every `*.json` file under `path`, recursively, in name order."""
        root = Path(path) if isinstance(path, str | os.PathLike) else path
        if not root.is_dir():
            raise LexiconError(f"not a directory: {root}")
        return [self._load_file(file) for file in _json_files(root)]

    def _load_file(self, file: Traversable) -> Lexicon:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise LexiconError(f"{file.name}: not valid JSON: {exc}") from exc
        try:
            return self.add(doc)
        except LexiconError as exc:
            raise LexiconError(f"{file.name}: {exc}") from exc

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self) -> Iterator[Lexicon]:
        return iter(self._docs.values())

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self.find(ref) is not None

    def document(self, nsid: str) -> Lexicon | None:
        """The document with this NSID, if present."""
        return self._docs.get(nsid)

    def find(self, ref: str) -> Def | None:
        """The definition a reference names, or None (also for malformed references)."""
        nsid, sep, name = ref.partition("#")
        doc = self._docs.get(nsid)
        if doc is None or (sep and not name):
            return None
        return doc.defs.get(name or "main")

    def get(self, ref: str) -> Def:
        """The definition a reference names; raise `LexiconError` if there is none."""
        schema = self.find(ref)
        if schema is None:
            raise LexiconError(f"no lexicon definition {ref!r} in the catalog")
        return schema

    def check_references(self) -> None:
        """Check that every `ref` and union member resolves to a definition that fits there."""
        for doc in self._docs.values():
            for name, schema in doc.defs.items():
                for where, ref, in_union in _references(schema, f"{doc.id}#{name}"):
                    target = self.find(ref)
                    if target is None:
                        raise LexiconError(f"{where}: {ref!r} is not in the catalog")
                    if in_union and not isinstance(target, ObjectDef | RecordDef):
                        raise LexiconError(f"{where}: union member {ref!r} is not an object")
                    if isinstance(target, _NOT_DATA):
                        raise LexiconError(f"{where}: {ref!r} does not describe data")

    def validate_record(self, collection: str, record: object, *, rkey: str | None = None) -> None:
        """Check a record of `collection` (and its record key, when given) against its lexicon.

        Raises `ValidationError` (a `LexiconError`) with the path of the first bad value, or
        `LexiconError` when the catalog has no record lexicon for `collection`.
        """
        validate.validate_record(self, collection, record, rkey=rkey)

    def validate(self, ref: str, value: object) -> None:
        """Check a value against any data definition, such as `app.bsky.embed.images`."""
        schema = self.get(ref)
        if isinstance(schema, _NOT_DATA):
            raise LexiconError(f"{ref!r} is an XRPC method, not a data definition")
        validate.validate_value(self, schema, value)

    def validate_params(self, nsid: str, params: Mapping[str, object]) -> None:
        """Check the parameters of an XRPC call, already converted to their types."""
        validate.validate_params(self, self.get(nsid), params)

    def validate_input(self, nsid: str, body: object) -> None:
        """Check the input body of a procedure (None when there is none)."""
        method = self.get(nsid)
        if not isinstance(method, ProcedureDef):
            raise LexiconError(f"{nsid!r} is not a procedure")
        validate.validate_body(self, method.input, body, "input")

    def validate_output(self, nsid: str, body: object) -> None:
        """Check the output body of a query or procedure (None when there is none)."""
        method = self.get(nsid)
        if not isinstance(method, QueryDef | ProcedureDef):
            raise LexiconError(f"{nsid!r} is not a query or procedure")
        validate.validate_body(self, method.output, body, "output")


def _json_files(folder: Traversable) -> Iterator[Traversable]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _json_files(entry)
        elif entry.name.endswith(".json"):
            yield entry


def _references(schema: Def | None, where: str) -> Iterator[tuple[str, str, bool]]:
    """Every reference inside a definition: (location, reference, is a union member)."""
    match schema:
        case RefDef():
            yield where, schema.ref, False
        case UnionDef():
            for ref in schema.refs:
                yield where, ref, True
        case ArrayDef():
            yield from _references(schema.items, f"{where}/items")
        case ObjectDef():
            for key, prop in schema.properties.items():
                yield from _references(prop, f"{where}/{key}")
        case RecordDef():
            yield from _references(schema.record, f"{where}/record")
        case QueryDef() | ProcedureDef():
            bodies = [("output", schema.output)]
            if isinstance(schema, ProcedureDef):
                bodies.append(("input", schema.input))
            for label, body in bodies:
                if body is not None:
                    yield from _references(body.schema, f"{where}/{label}")
        case SubscriptionDef():
            yield from _references(schema.message, f"{where}/message")
