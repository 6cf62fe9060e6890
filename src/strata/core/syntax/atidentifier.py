"""AT identifiers: the account reference in AT-URIs and XRPC parameters, a DID or a handle."""

from __future__ import annotations

from strata.core.syntax._fail import fail
from strata.core.syntax.did import validate_did
from strata.core.syntax.handle import validate_handle


def validate_at_identifier(s: str) -> str:
    """Return `s` if it is a valid DID or handle, else raise `InvalidSyntax`."""
    if s.startswith("did:"):
        return validate_did(s)
    if s[:4].lower() == "did:":
        # A handle can never contain ':', so this is a DID with a bad prefix.
        raise fail("DID prefix must be lowercase 'did:'", s)
    return validate_handle(s)
