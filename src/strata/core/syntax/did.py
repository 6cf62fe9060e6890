"""DID syntax as atproto restricts it (a subset of W3C DID syntax, no DID URL parts)."""

from __future__ import annotations

import re
from typing import Final

from strata.core.syntax._fail import fail

MAX_DID_LENGTH: Final = 2048

_DID_RE: Final = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]")
_ALLOWED_RE: Final = re.compile(r"[a-zA-Z0-9._:%-]*")
_METHOD_RE: Final = re.compile(r"[a-z]+")


def validate_did(s: str) -> str:
    """Return `s` if it is a syntactically valid DID, else raise `InvalidSyntax`."""
    if len(s) <= MAX_DID_LENGTH and _DID_RE.fullmatch(s):
        return s
    raise _diagnose(s)


def did_method(s: str) -> str:
    """The method of a DID (`plc` for `did:plc:...`), after validating it."""
    return validate_did(s).split(":", 2)[1]


def _diagnose(s: str) -> Exception:
    # Only reached for invalid input, so the valid path stays a single regex match.
    if not s:
        return fail("DID is empty", s)
    if len(s) > MAX_DID_LENGTH:
        return fail(f"DID too long (max {MAX_DID_LENGTH} chars)", s)
    if not s.startswith("did:"):
        return fail("DID must start with 'did:'", s)
    if not _ALLOWED_RE.fullmatch(s):
        return fail("DID contains disallowed characters", s)
    parts = s.split(":", 2)
    if len(parts) < 3:
        return fail("DID needs a method and a method-specific identifier", s)
    if not _METHOD_RE.fullmatch(parts[1]):
        return fail("DID method must be lowercase letters", s)
    if s.endswith((":", "%")):
        return fail("DID must not end with ':' or '%'", s)
    return fail("invalid DID", s)
