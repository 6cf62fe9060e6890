"""The DNS half of handle resolution: the `did=` TXT record at `_atproto.<handle>`.

A handle is bound to a DID by a TXT record at `_atproto.<handle>` whose value is `did=<DID>`
(https://atproto.com/specs/handle). The parsing rules follow the reference TypeScript
implementation: each record's character-strings are joined, records not starting with `did=` are
ignored, and anything other than exactly one `did=` record is "no answer".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.txtbase import TXTBase

from strata.core.errors import InvalidSyntax
from strata.core.syntax import validate_did

__all__ = ["ATPROTO_SUBDOMAIN", "DID_PREFIX", "DnsLookupError", "DnsTxtResolver", "parse_txt"]

ATPROTO_SUBDOMAIN = "_atproto"
DID_PREFIX = "did="


class DnsLookupError(Exception):
    """The DNS source failed (timeout, SERVFAIL, refused, network error): not an answer."""


def parse_txt(records: Iterable[Sequence[bytes]]) -> str | None:
    """The DID in a set of `_atproto` TXT records, None unless exactly one valid `did=` record.

    Each record is the list of its character-strings, which are joined before parsing: a value
    longer than 255 bytes has to be split into several strings by whoever publishes it.
    """
    # Undecodable bytes are replaced rather than dropped, so such a record still counts towards
    # ambiguity; a DID is ASCII, so a replaced character can never validate.
    joined = (b"".join(chunks).decode("utf-8", errors="replace") for chunks in records)
    found = [value for value in joined if value.startswith(DID_PREFIX)]
    if len(found) != 1:
        return None
    did = found[0][len(DID_PREFIX) :]
    try:
        return validate_did(did)
    except InvalidSyntax:
        return None


class DnsTxtResolver:
    """Looks up the `did=` TXT record of a handle over DNS.

    With `nameservers=None` the system resolver configuration is used (`/etc/resolv.conf`, via
    dnspython); otherwise exactly the given `(ip, port)` servers are queried, over UDP with TCP
    fallback on truncation. `timeout` bounds each whole lookup, in seconds.
    """

    def __init__(
        self, nameservers: Sequence[tuple[str, int]] | None = None, timeout: float = 3.0
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if nameservers is not None and not nameservers:
            raise ValueError("nameservers must not be empty (use None for the system resolver)")
        self._timeout = float(timeout)
        self._resolver: dns.asyncresolver.Resolver | None = None
        if nameservers is not None:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(ip, port) for ip, port in nameservers
            ]
            self._resolver = self._limit(resolver)

    @property
    def timeout(self) -> float:
        """The bound on one whole lookup, in seconds."""
        return self._timeout

    async def atproto_did(self, handle: str) -> str | None:
        """The DID published at _atproto.<handle>, None when there is none (NXDOMAIN, NoAnswer, no
        or ambiguous did= record). Raises DnsLookupError when the lookup itself failed.

        `handle` is expected to be already validated and normalized (lowercase) by the caller.
        """
        try:
            # Absolute name, so resolv.conf search domains can never be appended.
            qname = dns.name.from_text(f"{ATPROTO_SUBDOMAIN}.{handle}", origin=dns.name.root)
        except dns.exception.DNSException:
            # A handle near the 253-char limit no longer fits in a DNS name once prefixed;
            # nothing can be published there, so this is "no record", not a failure.
            return None
        resolver = self._get_resolver()
        try:
            # dnspython enforces `lifetime` itself; wait_for is a guard so that no code path
            # (a stuck socket, a backend quirk) can outlive the timeout.
            answer = await asyncio.wait_for(
                resolver.resolve(qname, dns.rdatatype.TXT, search=False),
                timeout=self._timeout,
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (TimeoutError, dns.exception.Timeout) as exc:
            raise DnsLookupError(
                f"DNS lookup of {qname} timed out after {self._timeout:g}s"
            ) from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsLookupError(
                f"DNS lookup of {qname} failed: no nameserver gave an answer "
                f"(SERVFAIL, REFUSED or unreachable): {exc}"
            ) from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsLookupError(f"DNS lookup of {qname} failed: {exc!r}") from exc
        records = [rdata.strings for rdata in answer if isinstance(rdata, TXTBase)]
        return parse_txt(records)

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        # The system configuration is read lazily, on first use: a missing or empty resolv.conf
        # then surfaces as a lookup failure rather than making construction fail.
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=True)
            except (dns.exception.DNSException, OSError) as exc:
                raise DnsLookupError(f"no usable system DNS configuration: {exc}") from exc
            self._resolver = self._limit(resolver)
        return self._resolver

    def _limit(self, resolver: dns.asyncresolver.Resolver) -> dns.asyncresolver.Resolver:
        resolver.lifetime = self._timeout
        # Per-attempt timeout no larger than the whole budget, so one silent server cannot use
        # it all up when others are configured (dnspython's default attempt timeout is 2s).
        resolver.timeout = min(resolver.timeout, self._timeout)
        return resolver
