"""Public keys as multikey strings (`z...`) and `did:key` identifiers.

Both are base58btc multibase over a multicodec-tagged point: 0xe7 for secp256k1, 0x1200 for
P-256. atproto writes compressed points; uncompressed ones are accepted when reading.
"""

from __future__ import annotations

import functools
from typing import Final

from strata.core.crypto.keys import DID_KEY_PREFIX, ES256, ES256K, PublicKey, parse_public_key
from strata.core.crypto.multibase import P256_PUB, SECP256K1_PUB, multibase_decode, split_multicodec
from strata.core.errors import CryptoError

# An uncompressed P-256 multikey is 93 characters; longer input is not a key, and refusing it
# early keeps the quadratic base58 decoder away from hostile megabyte strings.
MAX_MULTIKEY_CHARS: Final = 128

_ALG_BY_MULTICODEC: Final = {SECP256K1_PUB: ES256K, P256_PUB: ES256}


# A relay verifies every commit of an account against the same key, so parsed keys are reused.
@functools.lru_cache(maxsize=4096)
def parse_multikey(multikey: str) -> PublicKey:
    """Parse a multikey: base58btc multibase of a multicodec-tagged public key."""
    if len(multikey) > MAX_MULTIKEY_CHARS:
        raise CryptoError(f"multikey is longer than {MAX_MULTIKEY_CHARS} characters")
    code, key_bytes = split_multicodec(multibase_decode(multikey))
    alg = _ALG_BY_MULTICODEC.get(code)
    if alg is None:
        raise CryptoError(f"unsupported key type: multicodec 0x{code:x}")
    return parse_public_key(key_bytes, alg)


def parse_did_key(did: str) -> PublicKey:
    """Parse a `did:key:` identifier into its public key."""
    if not did.startswith(DID_KEY_PREFIX):
        raise CryptoError(f"not a did:key: {did[:64]!r}")
    return parse_multikey(did[len(DID_KEY_PREFIX) :])


def format_did_key(public_key: PublicKey) -> str:
    """The `did:key:` identifier of a public key (compressed point)."""
    return public_key.did_key()


def verify_signature(did_key_or_multikey: str, message: bytes, signature: bytes) -> bool:
    """Verify a compact low-S signature of SHA-256(`message`) against a did:key or multikey.

    Returns False for any invalid signature; raises `CryptoError` or `DecodeError` only when the
    key itself is malformed.
    """
    if did_key_or_multikey.startswith(DID_KEY_PREFIX):
        public_key = parse_did_key(did_key_or_multikey)
    else:
        public_key = parse_multikey(did_key_or_multikey)
    return public_key.verify(message, signature)
