"""Namespaced identifiers (NSIDs): a reversed domain name followed by a camelCase name."""

from __future__ import annotations

import re
from typing import Final

from strata.core.syntax._fail import fail

# A 253-char domain authority, a dot, and a 63-char name.
MAX_NSID_LENGTH: Final = 317
MAX_SEGMENT_LENGTH: Final = 63

_NSID_RE: Final = re.compile(
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}"
)
_ALLOWED_RE: Final = re.compile(r"[a-zA-Z0-9.-]*")
_NAME_RE: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9]*")


def validate_nsid(s: str) -> str:
    """Return `s` if it is a syntactically valid NSID, else raise `InvalidSyntax`."""
    if len(s) <= MAX_NSID_LENGTH and _NSID_RE.fullmatch(s):
        return s
    raise _diagnose(s)


def nsid_authority(s: str) -> str:
    """The authority of an NSID as a lowercase domain (`app.bsky.feed.post` -> `feed.bsky.app`)."""
    segments = validate_nsid(s).split(".")[:-1]
    return ".".join(reversed(segments)).lower()


def nsid_name(s: str) -> str:
    """The name (final segment) of an NSID, case preserved."""
    return validate_nsid(s).rsplit(".", 1)[1]


def _diagnose(s: str) -> Exception:
    if not s:
        return fail("NSID is empty", s)
    if len(s) > MAX_NSID_LENGTH:
        return fail(f"NSID too long (max {MAX_NSID_LENGTH} chars)", s)
    if not _ALLOWED_RE.fullmatch(s):
        return fail("NSID contains disallowed characters", s)
    segments = s.split(".")
    if len(segments) < 3:
        return fail("NSID needs at least three segments", s)
    for segment in segments:
        if not segment:
            return fail("NSID has an empty segment", s)
        if len(segment) > MAX_SEGMENT_LENGTH:
            return fail(f"NSID segment too long (max {MAX_SEGMENT_LENGTH} chars)", s)
        if segment.startswith("-") or segment.endswith("-"):
            return fail("NSID segment starts or ends with a hyphen", s)
    if segments[0][0].isdigit():
        return fail("NSID first segment must start with a letter", s)
    if not _NAME_RE.fullmatch(segments[-1]):
        return fail("NSID name must be letters and digits, starting with a letter", s)
    return fail("invalid NSID", s)
