"""AT-URIs in the restricted form lexicon `at-uri` fields allow.

`at://AUTHORITY[/COLLECTION[/RKEY]]`, where the authority is a DID or handle, the collection an
NSID and the record key a valid record key. No query, fragment or trailing slash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from strata.core.errors import InvalidSyntax
from strata.core.syntax._fail import fail
from strata.core.syntax.atidentifier import validate_at_identifier
from strata.core.syntax.nsid import validate_nsid
from strata.core.syntax.recordkey import validate_record_key

MAX_AT_URI_LENGTH: Final = 8192
_PREFIX: Final = "at://"


def validate_at_uri(s: str) -> str:
    """Return `s` if it is a valid AT-URI, else raise `InvalidSyntax`."""
    _check_parts(s, *_split(s))
    return s


def _split(s: str) -> tuple[str, str | None, str | None]:
    # Checked first so oversized input is rejected before any splitting.
    if len(s) > MAX_AT_URI_LENGTH:
        raise fail(f"AT-URI too long (max {MAX_AT_URI_LENGTH} chars)", s)
    if not s.startswith(_PREFIX):
        raise fail(f"AT-URI must start with {_PREFIX!r}", s)
    parts = s[len(_PREFIX) :].split("/")
    if len(parts) > 3:
        raise fail("AT-URI has more than two path segments", s)
    if "" in parts[1:]:
        raise fail("AT-URI has an empty path segment or a trailing slash", s)
    collection = parts[1] if len(parts) > 1 else None
    rkey = parts[2] if len(parts) > 2 else None
    return parts[0], collection, rkey


def _check_parts(uri: str, authority: str, collection: str | None, rkey: str | None) -> None:
    # Each part's own message is kept, with the AT-URI context in front of it.
    try:
        validate_at_identifier(authority)
    except InvalidSyntax as exc:
        raise InvalidSyntax(f"AT-URI authority is not a DID or handle: {exc}") from exc
    if collection is not None:
        try:
            validate_nsid(collection)
        except InvalidSyntax as exc:
            raise InvalidSyntax(f"AT-URI collection is not an NSID: {exc}") from exc
    if rkey is not None:
        if collection is None:
            raise fail("AT-URI record key needs a collection", uri)
        try:
            validate_record_key(rkey)
        except InvalidSyntax as exc:
            raise InvalidSyntax(f"AT-URI record key is invalid: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AtUri:
    """A parsed AT-URI. Constructing one validates every part."""

    authority: str
    collection: str | None = None
    rkey: str | None = None

    def __post_init__(self) -> None:
        # The parts' own length limits keep any valid AT-URI well under the overall limit.
        _check_parts(str(self), self.authority, self.collection, self.rkey)

    @classmethod
    def parse(cls, s: str) -> AtUri:
        """Parse and validate an AT-URI string."""
        return cls(*_split(s))

    @classmethod
    def make(cls, authority: str, collection: str | None = None, rkey: str | None = None) -> AtUri:
        """Build an AT-URI from its parts, validating each."""
        return cls(authority, collection, rkey)

    def __str__(self) -> str:
        uri = _PREFIX + self.authority
        if self.collection is not None:
            uri += "/" + self.collection
            if self.rkey is not None:
                uri += "/" + self.rkey
        return uri
