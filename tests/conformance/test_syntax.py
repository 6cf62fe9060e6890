"""atproto-interop-tests `syntax/` vectors: valid lines accepted, invalid lines rejected."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strata.core.errors import InvalidSyntax
from strata.core.syntax import (
    AtUri,
    parse_datetime,
    parse_language,
    validate_at_identifier,
    validate_at_uri,
    validate_cid_string,
    validate_datetime,
    validate_did,
    validate_handle,
    validate_language,
    validate_nsid,
    validate_record_key,
    validate_tid,
    validate_uri,
)
from tests.conformance.conftest import interop_lines

VALIDATORS: dict[str, Callable[[str], str]] = {
    "atidentifier": validate_at_identifier,
    "aturi": validate_at_uri,
    "cid": validate_cid_string,
    "datetime": validate_datetime,
    "did": validate_did,
    "handle": validate_handle,
    "language": validate_language,
    "nsid": validate_nsid,
    "recordkey": validate_record_key,
    "tid": validate_tid,
    "uri": validate_uri,
}


def _id(line: str) -> str:
    # repr() makes leading/trailing whitespace visible; long vectors are shortened.
    if len(line) <= 48:
        return repr(line)
    return f"{line[:32]!r}...({len(line)} chars)"


def _lines(name: str) -> list[str]:
    return interop_lines("syntax", name)


def _cases(suffix: str) -> list[object]:
    return [
        pytest.param(validate, line, id=f"{kind}:{_id(line)}")
        for kind, validate in VALIDATORS.items()
        for line in _lines(f"{kind}_syntax_{suffix}.txt")
    ]


def _params(name: str) -> list[object]:
    return [pytest.param(line, id=_id(line)) for line in _lines(name)]


@pytest.mark.parametrize(("validate", "line"), _cases("valid"))
def test_valid(validate: Callable[[str], str], line: str) -> None:
    assert validate(line) == line


@pytest.mark.parametrize(("validate", "line"), _cases("invalid"))
def test_invalid(validate: Callable[[str], str], line: str) -> None:
    with pytest.raises(InvalidSyntax):
        validate(line)


@pytest.mark.parametrize("line", _params("aturi_syntax_valid.txt"))
def test_aturi_round_trip(line: str) -> None:
    assert str(AtUri.parse(line)) == line


@pytest.mark.parametrize("line", _params("aturi_syntax_invalid.txt"))
def test_aturi_parse_invalid(line: str) -> None:
    with pytest.raises(InvalidSyntax):
        AtUri.parse(line)


@pytest.mark.parametrize("line", _params("datetime_syntax_valid.txt"))
def test_datetime_valid_parses(line: str) -> None:
    if line.startswith("0000-"):
        # Year zero is valid atproto but outside what `datetime` can represent.
        with pytest.raises(InvalidSyntax, match="0000"):
            parse_datetime(line)
        return
    parsed = parse_datetime(line)
    assert parsed.utcoffset() is not None
    assert f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d}" == line[:10]


@pytest.mark.parametrize("line", _params("datetime_parse_invalid.txt"))
def test_datetime_parse_invalid(line: str) -> None:
    with pytest.raises(InvalidSyntax):
        parse_datetime(line)
    # As in the reference implementations, validation also checks that the values are real.
    with pytest.raises(InvalidSyntax):
        validate_datetime(line)


@pytest.mark.parametrize("line", _params("language_syntax_valid.txt"))
def test_language_valid_parses(line: str) -> None:
    assert parse_language(line).tag == line


@pytest.mark.parametrize("line", _params("language_parse_invalid.txt"))
def test_language_parse_invalid(line: str) -> None:
    assert validate_language(line) == line
    with pytest.raises(InvalidSyntax, match="repeats"):
        parse_language(line)
