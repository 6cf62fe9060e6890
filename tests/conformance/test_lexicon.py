"""atproto-interop-tests `lexicon/` vectors: schema documents, and records checked against the
vectors' own catalog."""

from __future__ import annotations

from typing import Any

import pytest

from strata.core.cbor import from_json
from strata.core.errors import DecodeError, LexiconError
from strata.core.lexicon import Catalog, parse_lexicon
from tests.conformance.conftest import interop_json, vector_path


def _cases(name: str) -> list[Any]:
    return [
        pytest.param(vector, id=f"{i}:{vector['name']}")
        for i, vector in enumerate(interop_json("lexicon", name))
    ]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    folder = vector_path("atproto-interop-tests", "lexicon", "catalog")
    if folder is None:
        pytest.skip("conformance vectors not found")
    catalog = Catalog()
    catalog.load_directory(folder)
    return catalog


@pytest.mark.parametrize("vector", _cases("lexicon-valid.json"))
def test_lexicon_valid(vector: dict[str, Any]) -> None:
    lexicon = parse_lexicon(vector["lexicon"])
    assert lexicon.id == vector["lexicon"]["id"]


@pytest.mark.parametrize("vector", _cases("lexicon-invalid.json"))
def test_lexicon_invalid(vector: dict[str, Any]) -> None:
    with pytest.raises(LexiconError):
        parse_lexicon(vector["lexicon"])


@pytest.mark.parametrize("vector", _cases("record-data-valid.json"))
def test_record_data_valid(catalog: Catalog, vector: dict[str, Any]) -> None:
    record = from_json(vector["data"])
    catalog.validate_record(record["$type"], record, rkey=vector["rkey"])


@pytest.mark.parametrize("vector", _cases("record-data-invalid.json"))
def test_record_data_invalid(catalog: Catalog, vector: dict[str, Any]) -> None:
    # Data the data model itself rejects is as invalid as data its lexicon rejects.
    with pytest.raises((LexiconError, DecodeError)):
        record = from_json(vector["data"])
        catalog.validate_record(vector["data"]["$type"], record, rkey=vector["rkey"])


def test_catalog_documents_are_valid(catalog: Catalog) -> None:
    assert {doc.id for doc in catalog} >= {"example.lexicon.record", "example.lexicon.query"}
