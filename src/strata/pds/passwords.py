"""Password hashing with scrypt, a memory-hard KDF, in the reference PDS's stored format.

A stored hash is `salt:hash` in hex (16-byte salt, 64-byte key, N=2^14, r=8, p=1: Node's
defaults), so accounts can move between Strata and the reference implementation's databases.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MAX_PASSWORD_LENGTH = 256


def _derive(password: str, salt: str) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt.encode(), n=1 << 14, r=8, p=1, maxmem=64 << 20, dklen=64
    )


def hash_password(password: str) -> str:
    """A new salted hash of `password`."""
    salt = secrets.token_hex(16)
    return f"{salt}:{_derive(password, salt).hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a stored `salt:hash`."""
    salt, sep, expected = stored.partition(":")
    if not sep:
        return False
    return hmac.compare_digest(_derive(password, salt).hex(), expected)


def new_app_password() -> str:
    """An app password in the reference's shape: four groups of four, like `abcd-efgh-ijkl-mnop`."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    chars = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))
