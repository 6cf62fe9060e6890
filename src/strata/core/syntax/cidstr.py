"""CID strings as lexicon `cid` fields check them: a quick syntax check, not a decode.

Any multibase encoding is accepted; the legacy CIDv0 form (base58btc starting with `Qm`) is not.
Use `strata.core.cid.CID.from_str` to decode a CID.
"""

from __future__ import annotations

import re
from typing import Final

from strata.core.syntax._fail import fail

MIN_CID_LENGTH: Final = 8
MAX_CID_LENGTH: Final = 256

_CID_RE: Final = re.compile(r"[a-zA-Z0-9+=]{8,256}")


def validate_cid_string(s: str) -> str:
    """Return `s` if it looks like a CIDv1 string, else raise `InvalidSyntax`."""
    if _CID_RE.fullmatch(s) and not s.startswith("Qm"):
        return s
    if len(s) < MIN_CID_LENGTH:
        raise fail(f"CID string too short (min {MIN_CID_LENGTH} chars)", s)
    if len(s) > MAX_CID_LENGTH:
        raise fail(f"CID string too long (max {MAX_CID_LENGTH} chars)", s)
    if s.startswith("Qm"):
        raise fail("CIDv0 strings are not allowed", s)
    raise fail("CID string contains disallowed characters", s)
