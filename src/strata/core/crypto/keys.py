"""The two elliptic curves atproto signs with: secp256k1 ("K-256", ES256K) and NIST P-256 (ES256).

A signature is the 64-byte compact `r || s` of an ECDSA signature over the SHA-256 of the message.
atproto only accepts the "low-S" form (s <= n/2), so that every signature has exactly one valid
encoding; DER-encoded signatures are not accepted either.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Final, Self

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from strata.core.crypto.multibase import P256_PUB, SECP256K1_PUB, add_multicodec, multibase_encode
from strata.core.errors import CryptoError

ES256K: Final = "ES256K"
"""JWT algorithm name of secp256k1 keys."""
ES256: Final = "ES256"
"""JWT algorithm name of NIST P-256 keys."""

DID_KEY_PREFIX: Final = "did:key:"

SIGNATURE_BYTES: Final = 64
PRIVATE_KEY_BYTES: Final = 32

# Group orders of the two curves.
_K256_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P256_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_P256_CURVE: Final = ec.SECP256R1()
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())


def _low_s_der(signature: bytes, order: int) -> bytes | None:
    """DER form of a compact low-S signature, or None when it is not one.

    Both backends only take DER, and checking the range here keeps a high-S signature from
    ever reaching a backend that would accept it.
    """
    if len(signature) != SIGNATURE_BYTES:
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < order and 0 < s <= order >> 1):
        return None
    return encode_dss_signature(r, s)


def _check_point_encoding(data: bytes) -> None:
    if len(data) == 33 and data[0] in (2, 3):
        return
    if len(data) == 65 and data[0] == 4:
        return
    raise CryptoError(
        f"public key must be a 33-byte compressed or 65-byte uncompressed SEC1 point, "
        f"got {len(data)} bytes"
    )


def _check_private_bytes(data: bytes, order: int) -> None:
    if len(data) != PRIVATE_KEY_BYTES:
        raise CryptoError(f"private key must be {PRIVATE_KEY_BYTES} bytes, got {len(data)}")
    if not 0 < int.from_bytes(data, "big") < order:
        raise CryptoError("private key is out of range for the curve")


class PublicKey(abc.ABC):
    """A public key of one of the curves atproto uses. Immutable, hashable, comparable."""

    __slots__ = ("_compressed",)

    jwt_alg: ClassVar[str]
    """The JWT algorithm name: "ES256K" or "ES256"."""
    multicodec: ClassVar[int]
    """Multicodec code that tags this key type in a multikey or did:key."""

    def __init__(self, compressed: bytes) -> None:
        self._compressed = compressed

    def compressed_bytes(self) -> bytes:
        """The 33-byte compressed SEC1 encoding of the point."""
        return self._compressed

    def multikey(self) -> str:
        """Multibase (base58btc) encoding of the multicodec-tagged compressed point."""
        return multibase_encode(add_multicodec(self.multicodec, self._compressed))

    def did_key(self) -> str:
        """The `did:key:` form of this key."""
        return DID_KEY_PREFIX + self.multikey()

    @abc.abstractmethod
    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is a valid compact low-S signature of SHA-256(`message`).

        Never raises on a malformed signature: anything that is not one is simply invalid.
        """

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.jwt_alg == other.jwt_alg and self._compressed == other._compressed

    def __hash__(self) -> int:
        return hash((self.jwt_alg, self._compressed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.did_key()!r})"


class K256PublicKey(PublicKey):
    """A secp256k1 public key (ES256K)."""

    __slots__ = ("_key",)

    jwt_alg = ES256K
    multicodec = SECP256K1_PUB

    def __init__(self, key: coincurve.PublicKey) -> None:
        super().__init__(key.format(compressed=True))
        # Parsed once so that verification does no point decoding.
        self._key = key

    @classmethod
    def from_bytes(cls, data: bytes) -> K256PublicKey:
        """Parse a compressed (33-byte) or uncompressed (65-byte) SEC1 point."""
        _check_point_encoding(data)
        try:
            return cls(coincurve.PublicKey(bytes(data)))
        except ValueError as exc:
            raise CryptoError("bytes are not a point on the secp256k1 curve") from exc

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is a valid compact low-S signature of SHA-256(`message`)."""
        der = _low_s_der(signature, _K256_N)
        if der is None:
            return False
        try:
            return bool(self._key.verify(der, message))
        except ValueError:
            return False


class P256PublicKey(PublicKey):
    """A NIST P-256 public key (ES256)."""

    __slots__ = ("_key",)

    jwt_alg = ES256
    multicodec = P256_PUB

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        super().__init__(key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))
        self._key = key

    @classmethod
    def from_bytes(cls, data: bytes) -> P256PublicKey:
        """Parse a compressed (33-byte) or uncompressed (65-byte) SEC1 point."""
        _check_point_encoding(data)
        try:
            return cls(ec.EllipticCurvePublicKey.from_encoded_point(_P256_CURVE, bytes(data)))
        except ValueError as exc:
            raise CryptoError("bytes are not a point on the P-256 curve") from exc

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is a valid compact low-S signature of SHA-256(`message`)."""
        der = _low_s_der(signature, _P256_N)
        if der is None:
            return False
        try:
            self._key.verify(der, message, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True


def parse_public_key(data: bytes, alg: str) -> PublicKey:
    """Parse a compressed or uncompressed SEC1 point of the curve named by `alg`."""
    if alg == ES256K:
        return K256PublicKey.from_bytes(data)
    if alg == ES256:
        return P256PublicKey.from_bytes(data)
    raise CryptoError(f"unsupported key algorithm {alg!r}, expected {ES256K!r} or {ES256!r}")


class Keypair(abc.ABC):
    """A private key with its public key. Its repr never shows the private key."""

    __slots__ = ()

    @classmethod
    @abc.abstractmethod
    def generate(cls) -> Self:
        """A new random keypair."""

    @classmethod
    @abc.abstractmethod
    def from_private_bytes(cls, data: bytes) -> Self:
        """Load a keypair from its 32-byte big-endian private scalar."""

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey:
        """The public half of this keypair."""

    @abc.abstractmethod
    def private_bytes(self) -> bytes:
        """The 32-byte big-endian private scalar."""

    @abc.abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Sign SHA-256(`message`); the result is always a 64-byte compact low-S signature."""

    @property
    def jwt_alg(self) -> str:
        """The JWT algorithm name: "ES256K" or "ES256"."""
        return self.public_key.jwt_alg

    def did(self) -> str:
        """The `did:key:` of the public key."""
        return self.public_key.did_key()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.did()!r})"


class K256Keypair(Keypair):
    """A secp256k1 (ES256K) keypair."""

    __slots__ = ("_private", "_public")

    def __init__(self, private: coincurve.PrivateKey) -> None:
        self._private = private
        self._public = K256PublicKey(private.public_key)

    @classmethod
    def generate(cls) -> K256Keypair:
        """A new random keypair."""
        return cls(coincurve.PrivateKey())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> K256Keypair:
        """Load a keypair from its 32-byte big-endian private scalar."""
        _check_private_bytes(data, _K256_N)
        return cls(coincurve.PrivateKey(bytes(data)))

    @property
    def public_key(self) -> K256PublicKey:
        """The public half of this keypair."""
        return self._public

    def private_bytes(self) -> bytes:
        """The 32-byte big-endian private scalar."""
        return bytes(self._private.secret)

    def sign(self, message: bytes) -> bytes:
        """Sign SHA-256(`message`); the result is always a 64-byte compact low-S signature."""
        # libsecp256k1 always produces low-S; the recoverable form is the one coincurve
        # exposes in compact encoding, and its last byte is the recovery id.
        return bytes(self._private.sign_recoverable(message)[:SIGNATURE_BYTES])


class P256Keypair(Keypair):
    """A NIST P-256 (ES256) keypair."""

    __slots__ = ("_private", "_public")

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        self._private = private
        self._public = P256PublicKey(private.public_key())

    @classmethod
    def generate(cls) -> P256Keypair:
        """A new random keypair."""
        return cls(ec.generate_private_key(_P256_CURVE))

    @classmethod
    def from_private_bytes(cls, data: bytes) -> P256Keypair:
        """Load a keypair from its 32-byte big-endian private scalar."""
        _check_private_bytes(data, _P256_N)
        return cls(ec.derive_private_key(int.from_bytes(data, "big"), _P256_CURVE))

    @property
    def public_key(self) -> P256PublicKey:
        """The public half of this keypair."""
        return self._public

    def private_bytes(self) -> bytes:
        """The 32-byte big-endian private scalar."""
        return self._private.private_numbers().private_value.to_bytes(PRIVATE_KEY_BYTES, "big")

    def sign(self, message: bytes) -> bytes:
        """Sign SHA-256(`message`); the result is always a 64-byte compact low-S signature."""
        r, s = decode_dss_signature(self._private.sign(message, _ECDSA_SHA256))
        # OpenSSL returns either S; atproto verifiers reject the high one.
        if s > _P256_N >> 1:
            s = _P256_N - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
