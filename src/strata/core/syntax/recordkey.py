"""Record keys: the last segment of a record's repository path and AT-URI."""

from __future__ import annotations

import re
from typing import Final

from strata.core.syntax._fail import fail

MAX_RECORD_KEY_LENGTH: Final = 512

_RECORD_KEY_RE: Final = re.compile(r"[a-zA-Z0-9_~.:-]{1,512}")


def validate_record_key(s: str) -> str:
    """Return `s` if it is a syntactically valid record key, else raise `InvalidSyntax`."""
    if _RECORD_KEY_RE.fullmatch(s) and s != "." and s != "..":
        return s
    if not s:
        raise fail("record key is empty", s)
    if len(s) > MAX_RECORD_KEY_LENGTH:
        raise fail(f"record key too long (max {MAX_RECORD_KEY_LENGTH} chars)", s)
    if s in (".", ".."):
        raise fail("record key must not be '.' or '..'", s)
    raise fail("record key contains disallowed characters", s)
