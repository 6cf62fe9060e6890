"""Base58btc multibase strings and the multicodec prefixes that tag public keys.

atproto only ever uses the base58btc multibase (prefix `z`), so that is the only one supported.
"""

from __future__ import annotations

from typing import Final

from strata.core.cid import encode_uvarint, read_uvarint
from strata.core.errors import DecodeError

BASE58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BASE58BTC_PREFIX: Final = "z"

SECP256K1_PUB: Final = 0xE7
"""Multicodec code of a compressed secp256k1 public key."""
P256_PUB: Final = 0x1200
"""Multicodec code of a compressed NIST P-256 public key."""

_DIGIT: Final = {char: value for value, char in enumerate(BASE58_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Encode bytes as base58 (Bitcoin alphabet), without a multibase prefix."""
    stripped = data.lstrip(b"\0")
    zeros = len(data) - len(stripped)
    number = int.from_bytes(stripped, "big")
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(BASE58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode base58 (Bitcoin alphabet) text with no multibase prefix."""
    stripped = text.lstrip("1")
    zeros = len(text) - len(stripped)
    number = 0
    for char in stripped:
        digit = _DIGIT.get(char)
        if digit is None:
            raise DecodeError(f"invalid base58 character {char!r}")
        number = number * 58 + digit
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def multibase_encode(data: bytes) -> str:
    """Encode bytes as a base58btc multibase string (`z...`)."""
    return BASE58BTC_PREFIX + b58encode(data)


def multibase_decode(text: str) -> bytes:
    """Decode a base58btc multibase string (`z...`); other multibase encodings are rejected."""
    if not text.startswith(BASE58BTC_PREFIX):
        raise DecodeError("multibase string must use base58btc (prefix 'z')")
    return b58decode(text[1:])


def add_multicodec(code: int, data: bytes) -> bytes:
    """Prefix bytes with the varint of a multicodec code."""
    return encode_uvarint(code) + data


def split_multicodec(data: bytes) -> tuple[int, bytes]:
    """Split multicodec-prefixed bytes into (code, payload)."""
    code, pos = read_uvarint(data, 0)
    return code, data[pos:]
