"""Generic URIs, as lexicon `uri` fields allow them: any RFC 3986 scheme, then non-blank ASCII.

This is a cheap shape check, not a full RFC 3986 parse: it rejects whitespace, control and
non-ASCII characters, relative references and an empty body.
"""

from __future__ import annotations

import re
from typing import Final

from strata.core.syntax._fail import fail

MAX_URI_LENGTH: Final = 8192

_URI_RE: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[!-~]+")
_SCHEME_RE: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")


def validate_uri(s: str) -> str:
    """Return `s` if it is a URI with a scheme, else raise `InvalidSyntax`."""
    if len(s) <= MAX_URI_LENGTH and _URI_RE.fullmatch(s):
        return s
    if not s:
        raise fail("URI is empty", s)
    if len(s) > MAX_URI_LENGTH:
        raise fail(f"URI too long (max {MAX_URI_LENGTH} chars)", s)
    scheme, colon, rest = s.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise fail(
            "URI must start with a scheme (a letter, then letters, digits, '+-.') and ':'", s
        )
    if not rest:
        raise fail("URI has nothing after the scheme", s)
    raise fail("URI contains whitespace, control or non-ASCII characters", s)
