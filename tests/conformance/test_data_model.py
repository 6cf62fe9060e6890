"""Official data-model vectors: exact bytes and CIDs, and rejection of invalid JSON."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from strata.core import cbor
from strata.core.errors import DecodeError
from tests.conformance.conftest import interop_json

FIXTURES = interop_json("data-model", "data-model-fixtures.json")
VALID = interop_json("data-model", "data-model-valid.json")
INVALID = interop_json("data-model", "data-model-invalid.json")


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("case", FIXTURES, ids=lambda c: c["cid"][-8:])
def test_fixture_round_trip(case: dict[str, Any]) -> None:
    value = cbor.from_json(case["json"])
    encoded = cbor.encode(value)
    assert encoded == _b64(case["cbor_base64"])
    assert str(cbor.cid_of(value)) == case["cid"]
    assert cbor.to_json(cbor.decode(encoded)) == case["json"]
    assert cbor.decode_to_json(encoded) == case["json"]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c["note"])
def test_valid(case: dict[str, Any]) -> None:
    value = cbor.from_json(case["json"])
    assert cbor.decode(cbor.encode(value)) == value


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c["note"])
def test_invalid(case: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        cbor.from_json(case["json"])
