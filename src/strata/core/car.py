"""CAR v1 (Content Addressable aRchive): the streaming reader and writer repositories travel in.

A CAR is a varint-prefixed DAG-CBOR header `{version: 1, roots: [CID]}` followed by sections,
each a varint length, a binary CID and the block. The reader is streaming and bounded: it never
holds more than one section beyond its read buffer, and a section longer than `max_block_size`
is rejected before it is read, so hostile input cannot make it allocate without bound.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

from strata.core import cbor
from strata.core.cid import (
    CID,
    SHA256_CID_PREFIXES,
    cid_length,
    encode_uvarint,
    read_uvarint,
)
from strata.core.errors import DecodeError

MAX_HEADER_SIZE: Final = 64 * 1024
# Records are capped well below this; the bound exists for hostile input.
DEFAULT_MAX_BLOCK_SIZE: Final = 4 * 1024 * 1024
_CHUNK: Final = 256 * 1024


class _Buffer:
    """Bytes from a stream, refilled in chunks so that small reads stay cheap."""

    __slots__ = ("_buf", "_pos", "_stream")

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._buf = bytes(source)
            self._stream: BinaryIO | None = None
        else:
            self._buf = b""
            self._stream = source
        self._pos = 0

    def _fill(self, need: int) -> bool:
        """Make at least `need` bytes available; False when the stream ends first."""
        while len(self._buf) - self._pos < need:
            if self._stream is None:
                return False
            chunk = self._stream.read(max(_CHUNK, need))
            if not chunk:
                self._stream = None
                return False
            self._buf = self._buf[self._pos :] + chunk
            self._pos = 0
        return True

    @property
    def in_memory(self) -> bool:
        """Whether every byte is already in the buffer (the source was bytes, not a stream)."""
        return self._stream is None

    def remaining(self) -> tuple[bytes, int]:
        """The buffer and the position of the first unread byte."""
        return self._buf, self._pos

    def at_end(self) -> bool:
        return not self._fill(1)

    def varint(self) -> int:
        self._fill(10)
        value, self._pos = read_uvarint(self._buf, self._pos)
        return value

    def take(self, n: int) -> bytes:
        if not self._fill(n):
            raise DecodeError(f"CAR is truncated: wanted {n} bytes")
        start = self._pos
        self._pos = start + n
        return self._buf[start : self._pos]


class CarReader:
    """Iterate the blocks of a CAR as `(CID, bytes)`, checking each block against its CID.

    `roots` is available right after construction. Blocks whose hash does not match their CID
    raise `DecodeError`; so do truncation, bad varints and oversized sections.
    """

    def __init__(
        self,
        source: bytes | bytearray | memoryview | BinaryIO,
        *,
        verify: bool = True,
        max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    ) -> None:
        self._buf = _Buffer(source)
        self._verify = verify
        self._max_block_size = max_block_size
        self.roots = self._read_header()

    def _read_header(self) -> list[CID]:
        size = self._buf.varint()
        if size == 0 or size > MAX_HEADER_SIZE:
            raise DecodeError(f"CAR header size {size} is out of bounds")
        header = cbor.decode(self._buf.take(size))
        if not isinstance(header, dict) or header.get("version") != 1:
            raise DecodeError("CAR header is not a version 1 header")
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise DecodeError("CAR header roots must be a list of CIDs")
        if len(set(roots)) != len(roots):
            raise DecodeError("CAR header lists the same root twice")
        return roots

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        if self._buf.in_memory:
            yield from self._iter_in_memory()
            return
        buf = self._buf
        while not buf.at_end():
            size = buf.varint()
            if size > self._max_block_size:
                raise DecodeError(
                    f"CAR section of {size} bytes exceeds the {self._max_block_size} limit"
                )
            yield self._section(buf.take(size))

    def _section(self, section: bytes) -> tuple[CID, bytes]:
        # Nearly every CID is a 36-byte CIDv1 with sha2-256; skip parsing those.
        std = len(section) >= 36 and section[:4] in SHA256_CID_PREFIXES
        n = 36 if std else cid_length(section)
        cid = CID(section[:n])
        block = section[n:]
        if self._verify and not cid.verify(block):
            raise DecodeError(f"CAR block does not match its CID {cid}")
        return cid, block

    def _iter_in_memory(self) -> Iterator[tuple[CID, bytes]]:
        """The same walk over bytes already in memory, without the refilling buffer."""
        data, pos = self._buf.remaining()
        end = len(data)
        max_size = self._max_block_size
        verify = self._verify
        sha256 = hashlib.sha256
        while pos < end:
            first = data[pos]
            if first < 0x80:
                size, pos = first, pos + 1
            else:
                size, pos = read_uvarint(data, pos)
            if size > max_size:
                raise DecodeError(f"CAR section of {size} bytes exceeds the {max_size} limit")
            stop = pos + size
            if stop > end:
                raise DecodeError(f"CAR is truncated: wanted {size} bytes")
            if size >= 36 and data[pos : pos + 4] in SHA256_CID_PREFIXES:
                cid_bytes = data[pos : pos + 36]
                block = data[pos + 36 : stop]
                if verify and sha256(block).digest() != cid_bytes[4:]:
                    raise DecodeError(f"CAR block does not match its CID {CID(cid_bytes)}")
                yield CID(cid_bytes), block
            else:
                yield self._section(data[pos:stop])
            pos = stop


def read_car(
    source: bytes | bytearray | memoryview | BinaryIO,
    *,
    verify: bool = True,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
) -> tuple[CID, dict[CID, bytes]]:
    """Read a whole single-root CAR whose root block is present; return (root, blocks)."""
    reader = CarReader(source, verify=verify, max_block_size=max_block_size)
    if len(reader.roots) != 1:
        raise DecodeError(f"CAR must have exactly one root, found {len(reader.roots)}")
    root = reader.roots[0]
    blocks = dict(reader)
    if root not in blocks:
        raise DecodeError(f"CAR root {root} is not among its blocks")
    return root, blocks


def car_header(roots: list[CID]) -> bytes:
    """The varint-prefixed header of a CAR with these roots."""
    header = cbor.encode({"version": 1, "roots": roots})
    return encode_uvarint(len(header)) + header


def car_section(cid: CID, block: bytes) -> bytes:
    """One varint-prefixed section of a CAR."""
    cid_bytes = cid.cid_bytes
    return encode_uvarint(len(cid_bytes) + len(block)) + cid_bytes + block


def iter_car(roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    """Yield a CAR piece by piece, for streaming it to a file or an HTTP response."""
    yield car_header(roots)
    for cid, block in blocks:
        yield car_section(cid, block)


def write_car(roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> bytes:
    """A whole CAR as bytes."""
    out = io.BytesIO()
    for piece in iter_car(roots, blocks):
        out.write(piece)
    return out.getvalue()
