"""A tiny authoritative DNS server on 127.0.0.1 for tests, serving TXT records over UDP.

Runs as an asyncio datagram protocol inside the test's own event loop:

    async with LoopbackDns() as server:
        server.txt["_atproto.alice.test"] = [[b"did=did:plc:ewvi7nxzyoun6zhxrhs64oiz"]]
        resolver = DnsTxtResolver([server.address], timeout=1.0)

Names are compared lowercase and without the final dot. A name missing from `txt` gets NXDOMAIN;
a name mapped to an empty list (or queried for another type) gets NOERROR with no answer.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

# Without EDNS a UDP answer may be at most 512 bytes; larger ones are sent truncated (TC).
_CLASSIC_UDP_LIMIT = 512


def _key(name: dns.name.Name | str) -> str:
    text = name.to_text(omit_final_dot=True) if isinstance(name, dns.name.Name) else name
    return text.rstrip(".").lower()


class LoopbackDns(asyncio.DatagramProtocol):
    """UDP DNS server on 127.0.0.1 at an ephemeral port; see the module docstring."""

    def __init__(self, ttl: int = 60) -> None:
        self.ttl = ttl
        # name -> records, each record the list of its character-strings (<= 255 bytes each).
        self.txt: dict[str, list[list[bytes]]] = {}
        # Names whose queries are silently dropped, to exercise client timeouts.
        self.hang: set[str] = set()
        # Names answered with SERVFAIL.
        self.servfail: set[str] = set()
        # Well-formed queries received (including hung ones); `malformed` counts the rest.
        self.queries = 0
        self.malformed = 0
        self.names: list[str] = []
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The `(ip, port)` the server listens on."""
        if self._transport is None:
            raise RuntimeError("LoopbackDns is not running")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # asyncio.DatagramProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            # Garbage must never take the server down; a real server might send FORMERR.
            self.malformed += 1
            return
        self.queries += 1
        try:
            wire = self._answer(query)
        except Exception:
            # A bug in the test data (say, a string over 255 bytes) must not kill the loop.
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
            wire = response.to_wire()
        if wire is not None and self._transport is not None:
            self._transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a client that went away) are not the server's problem.
        pass

    # answering

    def _answer(self, query: dns.message.Message) -> bytes | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.question else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = _key(question.name)
        self.names.append(name)
        if name in self.hang:
            return None
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if name not in self.txt:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        records = self.txt[name]
        if (
            records
            and question.rdtype == dns.rdatatype.TXT
            and question.rdclass == dns.rdataclass.IN
        ):
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for strings in records:
                rrset.add(TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings), self.ttl)
            response.answer.append(rrset)
        limit = query.payload if query.edns >= 0 else _CLASSIC_UDP_LIMIT
        try:
            return response.to_wire(max_size=max(limit, _CLASSIC_UDP_LIMIT))
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()
