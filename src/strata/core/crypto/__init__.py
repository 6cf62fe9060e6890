"""Keys and signatures: secp256k1 (ES256K) and P-256 (ES256), multikeys and did:key."""

from strata.core.crypto.didkey import (
    format_did_key,
    parse_did_key,
    parse_multikey,
    verify_signature,
)
from strata.core.crypto.keys import (
    ES256,
    ES256K,
    K256Keypair,
    K256PublicKey,
    Keypair,
    P256Keypair,
    P256PublicKey,
    PublicKey,
    parse_public_key,
)
from strata.core.crypto.multibase import (
    P256_PUB,
    SECP256K1_PUB,
    b58decode,
    b58encode,
    multibase_decode,
    multibase_encode,
)

__all__ = [
    "ES256",
    "ES256K",
    "P256_PUB",
    "SECP256K1_PUB",
    "K256Keypair",
    "K256PublicKey",
    "Keypair",
    "P256Keypair",
    "P256PublicKey",
    "PublicKey",
    "b58decode",
    "b58encode",
    "format_did_key",
    "multibase_decode",
    "multibase_encode",
    "parse_did_key",
    "parse_multikey",
    "parse_public_key",
    "verify_signature",
]
