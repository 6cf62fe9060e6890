"""Syntax of atproto identifiers and lexicon string formats.

Every validator returns its input unchanged when it is valid and raises
`strata.core.errors.InvalidSyntax`, with a message naming the problem, when it is not.
Nothing here performs I/O.
"""

from strata.core.syntax.atidentifier import validate_at_identifier
from strata.core.syntax.aturi import AtUri, validate_at_uri
from strata.core.syntax.cidstr import validate_cid_string
from strata.core.syntax.dates import format_datetime, parse_datetime, validate_datetime
from strata.core.syntax.did import did_method, validate_did
from strata.core.syntax.handle import (
    DISALLOWED_TLDS,
    INVALID_HANDLE,
    is_disallowed_tld,
    normalize_handle,
    validate_handle,
)
from strata.core.syntax.language import LanguageTag, parse_language, validate_language
from strata.core.syntax.nsid import nsid_authority, nsid_name, validate_nsid
from strata.core.syntax.recordkey import validate_record_key
from strata.core.syntax.tid import (
    TidClock,
    next_tid,
    tid_from_parts,
    tid_timestamp_micros,
    validate_tid,
)
from strata.core.syntax.uri import validate_uri

__all__ = [
    "DISALLOWED_TLDS",
    "INVALID_HANDLE",
    "AtUri",
    "LanguageTag",
    "TidClock",
    "did_method",
    "format_datetime",
    "is_disallowed_tld",
    "next_tid",
    "normalize_handle",
    "nsid_authority",
    "nsid_name",
    "parse_datetime",
    "parse_language",
    "tid_from_parts",
    "tid_timestamp_micros",
    "validate_at_identifier",
    "validate_at_uri",
    "validate_cid_string",
    "validate_datetime",
    "validate_did",
    "validate_handle",
    "validate_language",
    "validate_nsid",
    "validate_record_key",
    "validate_tid",
    "validate_uri",
]
