"""Content identifiers (CIDv1) as atproto uses them.

A repository only ever creates two kinds: `dag-cbor` (codec 0x71) for records and MST nodes, and
`raw` (codec 0x55) for blobs, both with a 32-byte sha2-256 digest. Decoding is more lenient and
accepts any CIDv1 with a well-formed multihash, as the reference implementation does.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

import cbrrr

from strata.core.errors import DecodeError

DAG_CBOR: Final = 0x71
RAW: Final = 0x55
SHA2_256: Final = 0x12

_DAG_CBOR_PREFIX: Final = b"\x01\x71\x12\x20"
_RAW_PREFIX: Final = b"\x01\x55\x12\x20"
SHA256_CID_PREFIXES: Final = (_DAG_CBOR_PREFIX, _RAW_PREFIX)
"""Prefixes of the two 36-byte CID kinds a repository creates; decoders take them on a fast path."""
# A CID longer than this is not something any atproto implementation produces.
MAX_CID_BYTES: Final = 128


def read_uvarint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint at `pos`; return (value, next position).

    Rejects non-minimal encodings and values above 2**63, as the multiformats spec requires.
    """
    value = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if shift and byte == 0:
                raise DecodeError("varint is not minimally encoded")
            return value, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint is longer than 9 bytes")


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative integer as an unsigned LEB128 varint."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def cid_length(data: bytes | memoryview, pos: int = 0) -> int:
    """Length in bytes of the binary CIDv1 that starts at `pos`, after checking its structure."""
    version, p = read_uvarint(data, pos)
    if version != 1:
        raise DecodeError(f"unsupported CID version {version}")
    _codec, p = read_uvarint(data, p)
    _hash_code, p = read_uvarint(data, p)
    digest_len, p = read_uvarint(data, p)
    if digest_len > MAX_CID_BYTES or p + digest_len > len(data):
        raise DecodeError("CID digest is truncated or too long")
    return p + digest_len - pos


class CID(cbrrr.CID):
    """A binary CIDv1. Hashable, comparable, and encoded by DAG-CBOR as tag 42."""

    __slots__ = ()

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """Parse binary CID bytes (no multibase prefix), checking their structure."""
        if cid_length(data) != len(data):
            raise DecodeError("trailing bytes after CID")
        return cls(bytes(data))

    @classmethod
    def from_str(cls, text: str) -> CID:
        """Parse a base32 (multibase `b`) CID string."""
        if not text.startswith("b") or len(text) < 8 or len(text) > 2 * MAX_CID_BYTES:
            raise DecodeError(f"not a base32 CIDv1 string: {text[:80]!r}")
        body = text[1:]
        if body != body.lower() or "=" in body:
            raise DecodeError(f"not a base32 CIDv1 string: {text[:80]!r}")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError as exc:
            raise DecodeError(f"invalid base32 in CID {text[:80]!r}") from exc
        return cls.from_bytes(raw)

    @classmethod
    def dag_cbor(cls, block: bytes) -> CID:
        """The CID of a DAG-CBOR block."""
        return cls(_DAG_CBOR_PREFIX + hashlib.sha256(block).digest())

    @classmethod
    def raw(cls, data: bytes) -> CID:
        """The CID of raw bytes (blobs)."""
        return cls(_RAW_PREFIX + hashlib.sha256(data).digest())

    @classmethod
    def raw_from_digest(cls, digest: bytes) -> CID:
        """The CID of raw bytes whose sha-256 was computed while streaming them."""
        if len(digest) != 32:
            raise DecodeError("a sha-256 digest is 32 bytes")
        return cls(_RAW_PREFIX + digest)

    @property
    def codec(self) -> int:
        """The multicodec of the content (0x71 dag-cbor, 0x55 raw, ...)."""
        codec, _ = read_uvarint(self.cid_bytes, 1)
        return codec

    def verify(self, block: bytes) -> bool:
        """Whether `block` hashes to this CID (sha2-256 only, the only hash atproto uses)."""
        cb = self.cid_bytes
        if len(cb) != 36 or cb[2:4] != b"\x12\x20":
            return False
        return hashlib.sha256(block).digest() == cb[4:]

    def __str__(self) -> str:
        return "b" + base64.b32encode(self.cid_bytes).decode().lower().rstrip("=")

    def __repr__(self) -> str:
        return f"CID({self})"

    def __lt__(self, other: CID) -> bool:
        return self.cid_bytes < other.cid_bytes
