"""CAR v1: writing, streaming reads, and the reader's bounds on hostile input."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.car import (
    DEFAULT_MAX_BLOCK_SIZE,
    MAX_HEADER_SIZE,
    CarReader,
    car_header,
    car_section,
    iter_car,
    read_car,
    write_car,
)
from strata.core.cid import CID, encode_uvarint
from strata.core.errors import DecodeError


class TrickleIO(io.BytesIO):
    """A stream that never returns more than a few bytes per read, as a slow socket might."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        super().__init__(data)
        self.step = step

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.step
        return super().read(min(size, self.step))


class EndlessSection(io.RawIOBase):
    """A CAR that claims a huge section and then serves zeros forever, counting what is read."""

    def __init__(self, claimed: int) -> None:
        root = CID.dag_cbor(b"root")
        self._prefix = car_header([root]) + encode_uvarint(claimed)
        self.served = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 16
        head = self._prefix[self.served : self.served + size]
        out = head + bytes(size - len(head))
        self.served += len(out)
        return out


def block_pair(data: bytes, raw: bool) -> tuple[CID, bytes]:
    return (CID.raw(data) if raw else CID.dag_cbor(data)), data


block_lists = st.lists(
    st.builds(block_pair, st.binary(max_size=300), st.booleans()), min_size=1, max_size=12
)


def small_car() -> tuple[CID, list[tuple[CID, bytes]], bytes]:
    """A CAR of a few blocks whose root block comes last, so no strict prefix is valid."""
    blocks = [block_pair(cbor.encode({"n": i, "text": "x" * i}), False) for i in range(3)]
    root_cid, root_block = cbor.encode_with_cid({"children": [cid for cid, _ in blocks]})
    blocks.append((root_cid, root_block))
    return root_cid, blocks, write_car([root_cid], blocks)


def only_decode_errors(func: Any, *args: Any) -> None:
    try:
        func(*args)
    except DecodeError:
        pass
    except Exception as exc:  # pragma: no cover - reported as a failure
        pytest.fail(f"{type(exc).__name__}: {exc}")


def read_all(source: Any) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    reader = CarReader(source)
    return reader.roots, list(reader)


# --- round trips -------------------------------------------------------------------------------


@given(block_lists)
@settings(max_examples=60)
def test_write_read_round_trip(blocks: list[tuple[CID, bytes]]) -> None:
    root = blocks[0][0]
    data = write_car([root], blocks)
    assert data == b"".join(iter_car([root], blocks))
    got_root, got_blocks = read_car(data)
    assert got_root == root
    assert got_blocks == dict(blocks)
    assert read_all(data) == ([root], blocks)


@given(block_lists)
@settings(max_examples=40)
def test_streaming_in_small_chunks_matches(blocks: list[tuple[CID, bytes]]) -> None:
    root = blocks[-1][0]
    data = write_car([root], blocks)
    assert read_car(TrickleIO(data)) == read_car(data)
    assert read_all(TrickleIO(data, step=1)) == read_all(data)
    assert read_all(io.BytesIO(data)) == read_all(bytearray(data))
    assert read_all(memoryview(data)) == ([root], blocks)


def test_reader_with_no_roots_and_several_roots() -> None:
    blocks = [block_pair(b"a", True), block_pair(b"b", False)]
    for roots in ([], [blocks[0][0], blocks[1][0]]):
        data = write_car(roots, blocks)
        assert read_all(data) == (roots, blocks)
        with pytest.raises(DecodeError, match="exactly one root"):
            read_car(data)


def test_header_and_section_format() -> None:
    cid = CID.dag_cbor(b"x")
    header = cbor.encode({"version": 1, "roots": [cid]})
    assert car_header([cid]) == encode_uvarint(len(header)) + header
    assert car_section(cid, b"x") == bytes([37]) + cid.cid_bytes + b"x"
    assert write_car([cid], [(cid, b"x")]) == car_header([cid]) + car_section(cid, b"x")


def test_empty_blocks_and_non_standard_cids() -> None:
    # A block may be empty, and a CID may use another hash when verification is off.
    empty = block_pair(b"", False)
    identity = CID.from_bytes(b"\x01\x55\x00\x03abc")
    data = write_car([empty[0]], [empty, (identity, b"abc")])
    reader = CarReader(data, verify=False)
    assert list(reader) == [empty, (identity, b"abc")]
    with pytest.raises(DecodeError, match="does not match"):
        read_car(data)


# --- errors ------------------------------------------------------------------------------------


def test_truncated_at_every_offset() -> None:
    _root, _blocks, data = small_car()
    for end in range(len(data)):
        prefix = data[:end]
        for source in (prefix, TrickleIO(prefix), TrickleIO(prefix, step=1)):
            started = time.monotonic()
            with pytest.raises(DecodeError):
                read_car(source)
            assert time.monotonic() - started < 1.0


def test_truncated_inside_a_section_fails_even_when_read_incrementally() -> None:
    root, blocks, data = small_car()
    # The whole first section present, the second cut in half.
    first = len(car_header([root])) + len(car_section(*blocks[0]))
    cut = first + len(car_section(*blocks[1])) // 2
    reader = CarReader(data[:cut])
    it = iter(reader)
    assert next(it) == blocks[0]
    with pytest.raises(DecodeError, match="truncated"):
        next(it)


@pytest.mark.parametrize(
    "varint",
    [
        pytest.param(b"\x80\x00", id="non-minimal"),
        pytest.param(b"\xff" * 10 + b"\x01", id="too-long"),
        pytest.param(b"\x80", id="truncated"),
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", id="huge"),
    ],
)
def test_bad_varints(varint: bytes) -> None:
    root, _blocks, data = small_car()
    with pytest.raises(DecodeError):
        read_car(varint + data)
    with pytest.raises(DecodeError):
        read_car(TrickleIO(varint + data))
    # The same varint where a section's length belongs.
    header = car_header([root])
    body = header + varint + data[len(header) :]
    with pytest.raises(DecodeError):
        read_car(body)
    with pytest.raises(DecodeError):
        read_car(TrickleIO(body))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\x00", id="zero-size"),
        pytest.param(encode_uvarint(MAX_HEADER_SIZE + 1), id="too-big"),
        pytest.param(b"\x01\xf6", id="null"),
        pytest.param(car_header([])[:-1] + b"\x00", id="roots-not-a-list"),
    ],
)
def test_bad_header_size_or_body(header: bytes) -> None:
    with pytest.raises(DecodeError):
        read_car(header + bytes(100))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"version": 2, "roots": []}, id="version-2"),
        pytest.param({"roots": []}, id="no-version"),
        pytest.param({"version": 1}, id="no-roots"),
        pytest.param({"version": 1, "roots": "x"}, id="roots-not-list"),
        pytest.param({"version": 1, "roots": [b"\x01\x71"]}, id="root-not-cid"),
        pytest.param([1], id="not-a-map"),
    ],
)
def test_bad_header_content(header: Any) -> None:
    block = cbor.encode(header)
    with pytest.raises(DecodeError):
        CarReader(encode_uvarint(len(block)) + block)


def test_block_not_matching_its_cid() -> None:
    cid = CID.dag_cbor(b"the real content")
    data = write_car([cid], [(cid, b"something else")])
    with pytest.raises(DecodeError, match="does not match"):
        read_car(data)
    with pytest.raises(DecodeError, match="does not match"):
        read_car(TrickleIO(data))
    # Verification can be turned off for trusted input.
    assert read_car(data, verify=False) == (cid, {cid: b"something else"})


def test_flipped_byte_in_block_is_detected() -> None:
    _root, _blocks, data = small_car()
    corrupted = bytearray(data)
    corrupted[-1] ^= 0x01
    with pytest.raises(DecodeError, match="does not match"):
        read_car(bytes(corrupted))


def test_duplicate_root_in_header() -> None:
    cid = CID.dag_cbor(b"x")
    data = car_header([cid, cid]) + car_section(cid, b"x")
    with pytest.raises(DecodeError, match="same root twice"):
        CarReader(data)
    with pytest.raises(DecodeError):
        read_car(data)


def test_root_missing_from_blocks() -> None:
    root = CID.dag_cbor(b"root")
    other = block_pair(b"other", False)
    with pytest.raises(DecodeError, match="not among its blocks"):
        read_car(write_car([root], [other]))
    with pytest.raises(DecodeError, match="not among its blocks"):
        read_car(write_car([root], []))
    # CarReader itself does not require the root to be present.
    assert read_all(write_car([root], [other])) == ([root], [other])


def test_section_over_limit_is_rejected() -> None:
    block = b"y" * 100
    cid = CID.raw(block)
    data = write_car([cid], [(cid, block)])
    with pytest.raises(DecodeError, match="exceeds"):
        read_car(data, max_block_size=100)
    assert read_car(data, max_block_size=136) == (cid, {cid: block})


def test_huge_section_fails_fast_without_being_read() -> None:
    stream = EndlessSection(claimed=1 << 30)
    assert DEFAULT_MAX_BLOCK_SIZE < (1 << 30)
    started = time.monotonic()
    with pytest.raises(DecodeError, match="exceeds"):
        read_car(stream)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0
    # At most a read-ahead chunk or two, nowhere near the claimed gigabyte.
    assert stream.served <= 2 * 256 * 1024


@pytest.mark.parametrize(
    "section",
    [
        pytest.param(b"\x00", id="empty-section"),
        pytest.param(b"\x04\x01\x71\x12\x20", id="cid-prefix-only"),
        pytest.param(b"\x03\x00\x71\x12", id="cid-version-0"),
        pytest.param(b"\x06\x01\x71\x12\x20ab", id="cid-digest-truncated"),
    ],
)
def test_malformed_sections(section: bytes) -> None:
    root, _blocks, data = small_car()
    header = car_header([root])
    with pytest.raises(DecodeError):
        read_car(data + section)
    with pytest.raises(DecodeError):
        read_all(header + section)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    only_decode_errors(read_car, data)
    only_decode_errors(read_all, data)


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_random_sections_raise_only_decode_error(tail: bytes) -> None:
    root, _blocks, data = small_car()
    only_decode_errors(read_car, data + tail)
    only_decode_errors(read_all, car_header([root]) + tail)
    only_decode_errors(read_all, TrickleIO(car_header([root]) + tail))


@given(st.data())
@settings(max_examples=200)
def test_corrupted_car_raises_only_decode_error(data: st.DataObject) -> None:
    _root, _blocks, car = small_car()
    corrupted = bytearray(car)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(corrupted) - 1))
        corrupted[pos] = data.draw(st.integers(0, 255))
    only_decode_errors(read_car, bytes(corrupted))
    only_decode_errors(read_all, TrickleIO(bytes(corrupted)))
