"""HTTP basic auth for operator endpoints: user `admin` and the service's admin password."""

from __future__ import annotations

import base64
import binascii
import hmac


def decode_basic(credentials: str) -> tuple[str, str] | None:
    """The (user, password) in a basic-auth credentials string; None when malformed."""
    try:
        user, _, password = base64.b64decode(credentials).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def is_admin(credentials: str, password: str) -> bool:
    """Whether basic-auth `credentials` are user `admin` with `password` (constant time)."""
    found = decode_basic(credentials)
    # Compared as UTF-8 bytes: `compare_digest` refuses str with characters beyond ASCII.
    return (
        found is not None
        and found[0] == "admin"
        and hmac.compare_digest(found[1].encode(), password.encode())
    )
