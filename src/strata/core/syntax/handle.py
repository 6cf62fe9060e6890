"""Handle syntax: a DNS hostname with at least two labels and a TLD that starts with a letter.

Syntax and policy are separate: `laptop.local` is a syntactically valid handle, but its TLD is
one `is_disallowed_tld` reports, since such handles must never be registered or trusted.
"""

from __future__ import annotations

import re
from typing import Final

from strata.core.syntax._fail import fail

MAX_HANDLE_LENGTH: Final = 253
MAX_SEGMENT_LENGTH: Final = 63

INVALID_HANDLE: Final = "handle.invalid"
"""The placeholder shown in place of a handle that failed bidirectional verification."""

DISALLOWED_TLDS: Final = frozenset(
    {"local", "arpa", "invalid", "localhost", "internal", "example", "alt", "onion"}
)

_HANDLE_RE: Final = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
)
_ALLOWED_RE: Final = re.compile(r"[a-zA-Z0-9.-]*")


def validate_handle(s: str) -> str:
    """Return `s` if it is a syntactically valid handle, else raise `InvalidSyntax`."""
    if len(s) <= MAX_HANDLE_LENGTH and _HANDLE_RE.fullmatch(s):
        return s
    raise _diagnose(s)


def normalize_handle(s: str) -> str:
    """The canonical (lowercase) form of a handle, after validating it."""
    # Validate first: lowercasing some non-ASCII letters (the Kelvin sign) yields ASCII.
    return validate_handle(s).lower()


def is_disallowed_tld(handle: str) -> bool:
    """Whether the handle's TLD is one atproto never allows for accounts (`.local`, ...).

    This is policy, not syntax: it does not validate `handle`.
    """
    return handle.rsplit(".", 1)[-1].lower() in DISALLOWED_TLDS


def _diagnose(s: str) -> Exception:
    if not s:
        return fail("handle is empty", s)
    if len(s) > MAX_HANDLE_LENGTH:
        return fail(f"handle too long (max {MAX_HANDLE_LENGTH} chars)", s)
    if not _ALLOWED_RE.fullmatch(s):
        return fail("handle contains disallowed characters", s)
    labels = s.split(".")
    if len(labels) < 2:
        return fail("handle needs at least two segments", s)
    for label in labels:
        if not label:
            return fail("handle has an empty segment", s)
        if len(label) > MAX_SEGMENT_LENGTH:
            return fail(f"handle segment too long (max {MAX_SEGMENT_LENGTH} chars)", s)
        if label.startswith("-") or label.endswith("-"):
            return fail("handle segment starts or ends with a hyphen", s)
    return fail("handle TLD must start with a letter", s)
