"""DNS handle resolution against a loopback authoritative server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import dns.message
import dns.rcode
import pytest

from strata.identity.dns import DnsLookupError, DnsTxtResolver, parse_txt
from tests.identity.dnsserver import LoopbackDns

T = TypeVar("T")

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
OTHER_DID = "did:web:example.com"
HANDLE = "alice.test"
NAME = f"_atproto.{HANDLE}"


def run_with(
    setup: Callable[[LoopbackDns], None],
    body: Callable[[LoopbackDns, DnsTxtResolver], Awaitable[T]],
    timeout: float = 2.0,
) -> T:
    """Start a loopback server, configure it, and run `body` against a resolver pointed at it."""

    async def main() -> T:
        async with LoopbackDns() as server:
            setup(server)
            resolver = DnsTxtResolver([server.address], timeout=timeout)
            # Outer bound so a broken test can never hang the suite.
            return await asyncio.wait_for(body(server, resolver), timeout=timeout + 5)

    return asyncio.run(main())


def lookup(setup: Callable[[LoopbackDns], None], handle: str = HANDLE) -> str | None:
    async def body(_server: LoopbackDns, resolver: DnsTxtResolver) -> str | None:
        return await resolver.atproto_did(handle)

    return run_with(setup, body)


def records(*values: list[bytes]) -> Callable[[LoopbackDns], None]:
    def setup(server: LoopbackDns) -> None:
        server.txt[NAME] = list(values)

    return setup


def test_single_valid_record() -> None:
    assert lookup(records([f"did={DID}".encode()])) == DID


def test_queries_the_atproto_subdomain() -> None:
    async def body(server: LoopbackDns, resolver: DnsTxtResolver) -> str | None:
        did = await resolver.atproto_did(HANDLE)
        assert server.names == [NAME]
        assert server.queries == 1
        return did

    assert run_with(records([f"did={DID}".encode()]), body) == DID


def test_chunked_record_is_joined() -> None:
    assert lookup(records([b"did=did:plc:", b"ewvi7nxzyoun6zhxrhs64oiz"])) == DID
    assert lookup(records([b"did=", b"did:", b"plc:ewvi7n", b"xzyoun6zhxrhs64oiz"])) == DID


def test_long_chunked_did_web() -> None:
    # A did:web longer than one 255-byte character-string has to be split to be published.
    host = ".".join(["a" * 60] * 4) + ".example"
    did = f"did:web:{host}"
    value = f"did={did}".encode()
    assert len(value) > 255
    assert lookup(records([value[:255], value[255:]])) == did


def test_two_did_records_are_ambiguous() -> None:
    assert lookup(records([f"did={DID}".encode()], [f"did={OTHER_DID}".encode()])) is None


def test_non_did_records_ignored() -> None:
    setup = records(
        [b"v=spf1 -all"],
        [b"hello world"],
        [f"did={DID}".encode()],
        [b"DID=did:plc:zzzzzzzzzzzzzzzzzzzzzzzz"],  # the prefix is case-sensitive
        [b" did=did:plc:zzzzzzzzzzzzzzzzzzzzzzzz"],  # and not trimmed
    )
    assert lookup(setup) == DID


def test_only_non_did_records() -> None:
    assert lookup(records([b"v=spf1 -all"], [b"did"], [b"di", b"d:"])) is None


def test_chunk_boundary_inside_prefix_still_counts() -> None:
    assert lookup(records([b"di", b"d=" + DID.encode()])) == DID


@pytest.mark.parametrize(
    "value",
    [
        b"did=",
        b"did=not-a-did",
        b"did=did:plc:",
        b"did=did:plc:ewvi7nxzyoun6zhxrhs64oiz ",
        b"did= did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        b"did=did:plc:ewvi7nxzyoun6zhxrhs64oiz\n",
        b"did=DID:plc:ewvi7nxzyoun6zhxrhs64oiz",
        b"did=did:plc:ewvi7nxzyoun6zhxrhs64oiz\xff",
        b"did=did:plc:\xc3\xa9",
    ],
)
def test_invalid_did_is_no_result(value: bytes) -> None:
    assert lookup(records([value])) is None


def test_invalid_did_record_still_makes_valid_one_ambiguous() -> None:
    assert lookup(records([f"did={DID}".encode()], [b"did=nonsense"])) is None


def test_nxdomain_is_no_result() -> None:
    def setup(server: LoopbackDns) -> None:
        server.txt["_atproto.someone-else.test"] = [[f"did={DID}".encode()]]

    assert lookup(setup) is None


def test_no_answer_is_no_result() -> None:
    assert lookup(records()) is None


def test_servfail_raises() -> None:
    def setup(server: LoopbackDns) -> None:
        server.servfail.add(NAME)

    with pytest.raises(DnsLookupError, match="SERVFAIL"):
        lookup(setup)


def test_hang_raises_within_timeout() -> None:
    async def body(server: LoopbackDns, resolver: DnsTxtResolver) -> float:
        start = time.monotonic()
        with pytest.raises(DnsLookupError, match="timed out"):
            await resolver.atproto_did(HANDLE)
        assert server.queries >= 1
        return time.monotonic() - start

    def setup(server: LoopbackDns) -> None:
        server.hang.add(NAME)
        server.txt[NAME] = [[f"did={DID}".encode()]]

    elapsed = run_with(setup, body, timeout=0.3)
    assert elapsed < 2.0


def test_unreachable_server_raises_within_timeout() -> None:
    # Bind then release an ephemeral port, so nothing (most likely) listens on it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> float:
        resolver = DnsTxtResolver([("127.0.0.1", port)], timeout=0.3)
        start = time.monotonic()
        with pytest.raises(DnsLookupError):
            await asyncio.wait_for(resolver.atproto_did(HANDLE), timeout=5)
        return time.monotonic() - start

    assert asyncio.run(main()) < 2.0


def test_name_too_long_is_no_result_without_query() -> None:
    # A 253-char handle is valid, but `_atproto.` pushes it past DNS's 255-byte name limit.
    handle = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(handle) == 253

    async def body(server: LoopbackDns, resolver: DnsTxtResolver) -> str | None:
        did = await resolver.atproto_did(handle)
        assert server.queries == 0
        return did

    assert run_with(lambda _server: None, body) is None


def test_malformed_packet_does_not_crash_server() -> None:
    async def body(server: LoopbackDns, resolver: DnsTxtResolver) -> str | None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\x01" * 40):
                await loop.sock_sendto(sock, junk, server.address)
            # A well-formed query from the same socket still gets its answer.
            query = dns.message.make_query(NAME, "TXT")
            await loop.sock_sendto(sock, query.to_wire(), server.address)
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=2)
        response = dns.message.from_wire(data)
        assert response.id == query.id
        assert response.rcode() == dns.rcode.NOERROR
        assert server.malformed >= 3
        return await resolver.atproto_did(HANDLE)

    assert run_with(records([f"did={DID}".encode()]), body) == DID


def test_resolver_can_be_reused() -> None:
    async def body(server: LoopbackDns, resolver: DnsTxtResolver) -> list[str | None]:
        first = await resolver.atproto_did(HANDLE)
        server.txt[NAME] = [[f"did={OTHER_DID}".encode()]]
        second = await resolver.atproto_did(HANDLE)
        del server.txt[NAME]
        third = await resolver.atproto_did(HANDLE)
        return [first, second, third]

    assert run_with(records([f"did={DID}".encode()]), body) == [DID, OTHER_DID, None]


def test_parse_txt_matches_reference_rules() -> None:
    assert parse_txt([]) is None
    assert parse_txt([[b"did=" + DID.encode()]]) == DID
    assert parse_txt([[b"did=", DID.encode()], [b"other"]]) == DID
    assert parse_txt([[b"did=" + DID.encode()], [b"did=" + DID.encode()]]) is None


@pytest.mark.parametrize(
    ("nameservers", "timeout"),
    [([], 1.0), ([("127.0.0.1", 53)], 0.0), ([("127.0.0.1", 53)], -1.0)],
)
def test_bad_arguments(nameservers: list[tuple[str, int]], timeout: float) -> None:
    with pytest.raises(ValueError):
        DnsTxtResolver(nameservers, timeout=timeout)


def test_system_configuration_is_not_read_at_construction() -> None:
    resolver = DnsTxtResolver()
    assert resolver.timeout == 3.0
