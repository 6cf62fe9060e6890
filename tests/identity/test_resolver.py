"""The identity resolver against real directories on loopback, and against misbehaving ones."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from strata.core.crypto import K256Keypair
from strata.core.plc import document_data, format_did_document
from strata.identity import (
    IdentityNotFound,
    IdentityResolver,
    InvalidIdentifier,
    ResolutionFailed,
)
from strata.identity.did import did_web_url
from strata.identity.dns import DnsTxtResolver
from tests.identity.dnsserver import LoopbackDns
from tests.plcops import genesis
from tests.services import running_plc, serving

KEY = K256Keypair.from_private_bytes(bytes(range(1, 33)))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyDirectory:
    """A directory that serves fixed documents, and can be told to hang or fail."""

    def __init__(self, docs: dict[str, dict]) -> None:
        self.docs = docs
        self.mode = "ok"
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_get("/{did}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "error":
            return web.Response(status=500)
        doc = self.docs.get(request.match_info["did"])
        if doc is None:
            return web.json_response({"message": "DID not registered"}, status=404)
        return web.json_response(doc)


def plc_doc(handle: str = "alice.test") -> tuple[str, dict]:
    did, op = genesis([KEY], KEY, handle=handle)
    data = document_data(did, op)
    assert data is not None
    return did, format_did_document(data)


@asynccontextmanager
async def resolver_for(*urls: str, **options) -> AsyncIterator[IdentityResolver]:
    async with aiohttp.ClientSession() as session:
        # Every lookup stays on loopback: no system DNS, well-known files from 127.0.0.1 only.
        options.setdefault("dns", DnsTxtResolver(nameservers=[("127.0.0.1", 9)], timeout=0.3))
        options.setdefault("dev", True)
        options.setdefault("dev_hosts", {".test": "127.0.0.1:9"})
        yield IdentityResolver(session, list(urls), **options)


async def test_resolves_through_our_directory_with_dns_handle(tmp_path: Path) -> None:
    did, op = genesis([KEY], KEY, handle="alice.test")
    async with running_plc(tmp_path) as plc, LoopbackDns() as dns:
        await plc.directory.submit(did, op)
        dns.txt["_atproto.alice.test"] = [[f"did={did}".encode()]]
        resolver_dns = DnsTxtResolver(nameservers=[dns.address], timeout=1.0)
        async with resolver_for(plc.url, dns=resolver_dns) as resolver:
            identity = await resolver.resolve(did)
            assert identity.handle == "alice.test" and identity.handle_verified
            assert identity.document.signing_key() == KEY.public_key
            assert identity.document.pds_endpoint == "https://pds.test"
            by_handle = await resolver.resolve("Alice.TEST")
            assert by_handle.did == did and by_handle.handle == "alice.test"
            assert identity.stale_seconds == 0.0

            # A handle pointing at a DID that does not claim it is not verified.
            dns.txt["_atproto.mallory.test"] = [[f"did={did}".encode()]]
            assert (await resolver.resolve("mallory.test")).handle == "handle.invalid"


async def test_handle_from_well_known_in_dev_mode(tmp_path: Path) -> None:
    did, op = genesis([KEY], KEY, handle="bob.test")
    hosts = {"bob.test": did}

    async def well_known(request: web.Request) -> web.Response:
        found = hosts.get(request.host)
        return web.Response(text=found + "\n") if found else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/atproto-did", well_known)
    async with running_plc(tmp_path) as plc, serving(app) as site, LoopbackDns() as dns:
        await plc.directory.submit(did, op)
        address = site.removeprefix("http://")
        resolver_dns = DnsTxtResolver(nameservers=[dns.address], timeout=1.0)
        async with resolver_for(
            plc.url, dns=resolver_dns, dev_hosts={".test": address}
        ) as resolver:
            assert (await resolver.resolve("bob.test")).did == did
            with pytest.raises(IdentityNotFound):
                await resolver.resolve("nobody.test")


async def test_failover_from_a_hanging_primary_is_fast() -> None:
    did, doc = plc_doc()
    primary, mirror = FlakyDirectory({did: doc}), FlakyDirectory({did: doc})
    primary.mode = "hang"
    async with (
        serving(primary.app) as p,
        serving(mirror.app) as m,
        resolver_for(p, m, hedge_after=0.2, timeout=5.0) as resolver,
    ):
        started = time.monotonic()
        found = await resolver.resolve_did(did)
        assert found.value.did == did and time.monotonic() - started < 1.0
        # After repeated failures the breaker skips the primary altogether.
        primary.mode = "error"
        for _ in range(4):
            resolver.forget(did)
            await resolver.resolve_did(did)
        before = primary.requests
        resolver.forget(did)
        await resolver.resolve_did(did)
        assert primary.requests == before


async def test_stale_entries_are_served_while_every_source_fails() -> None:
    did, doc = plc_doc()
    source = FlakyDirectory({did: doc})
    clock = FakeClock()
    async with (
        serving(source.app) as url,
        resolver_for(url, clock=clock, fresh_for=60, serve_stale_for=600, timeout=0.5) as resolver,
    ):
        assert not (await resolver.resolve_did(did)).stale
        source.mode = "error"
        clock.now += 120
        stale = await resolver.resolve_did(did)
        assert stale.stale and stale.age == 120 and stale.value.did == did
        identity = await resolver.resolve(did)
        assert identity.stale_seconds >= 120
        await asyncio.sleep(0.2)  # the background refresh fails; the entry stays
        clock.now += 600
        with pytest.raises(ResolutionFailed):
            await resolver.resolve_did(did)


async def test_not_found_is_cached_briefly_and_lookups_are_shared() -> None:
    did, doc = plc_doc()
    source = FlakyDirectory({did: doc})
    clock = FakeClock()
    async with (
        serving(source.app) as url,
        resolver_for(url, clock=clock, negative_for=30) as resolver,
    ):
        missing, _ = plc_doc("other.test")
        missing = missing[:-1] + ("a" if missing[-1] != "a" else "b")
        for _ in range(3):
            with pytest.raises(IdentityNotFound):
                await resolver.resolve_did(missing)
        assert source.requests == 1
        clock.now += 31
        with pytest.raises(IdentityNotFound):
            await resolver.resolve_did(missing)
        assert source.requests == 2
        results = await asyncio.gather(*(resolver.resolve_did(did) for _ in range(50)))
        assert {r.value.did for r in results} == {did} and source.requests == 3


async def test_bad_answers_are_failures_not_documents() -> None:
    did, doc = plc_doc()
    _other, other_doc = plc_doc("other.test")
    source = FlakyDirectory({did: other_doc})
    big = {did: {**doc, "alsoKnownAs": ["at://x" * 20_000]}}
    async with serving(source.app) as wrong, serving(FlakyDirectory(big).app) as huge:
        for url in (wrong, huge):
            async with resolver_for(url) as resolver:
                with pytest.raises(ResolutionFailed):
                    await resolver.resolve_did(did)
    async with resolver_for("http://127.0.0.1:9") as resolver:
        for bad in ("did:plc:", "not a did", "did:key:zQ3sh", "did:web:a:b", "bad handle"):
            with pytest.raises(InvalidIdentifier):
                await resolver.resolve(bad)


async def test_did_web_on_loopback_only_in_dev_mode() -> None:
    docs: dict[str, dict] = {}

    async def did_json(request: web.Request) -> web.Response:
        return web.json_response(docs["doc"])

    app = web.Application()
    app.router.add_get("/.well-known/did.json", did_json)
    async with serving(app) as url:
        port = url.rsplit(":", 1)[1]
        did = f"did:web:localhost%3A{port}"
        docs["doc"] = {"id": did, "alsoKnownAs": ["at://web.test"], "service": []}
        async with resolver_for("http://127.0.0.1:9") as resolver:
            assert (await resolver.resolve_did(did)).value.handle == "web.test"
            docs["doc"] = {"id": "did:web:elsewhere.com"}
            resolver.forget(did)
            with pytest.raises(ResolutionFailed, match="not"):
                await resolver.resolve_did(did)
        async with resolver_for("http://127.0.0.1:9", dev=False) as resolver:
            with pytest.raises(InvalidIdentifier, match="--dev"):
                await resolver.resolve_did(did)
    assert did_web_url("did:web:example.com", dev=False) == (
        "https://example.com/.well-known/did.json"
    )
    with pytest.raises(InvalidIdentifier):
        did_web_url("did:web:127.0.0.1", dev=False)
    json.dumps(docs)


@pytest.mark.parametrize(
    "host",
    ["93.184.216.34", "10.0.0.1", "169.254.169.254", "2130706433", "%5B2001%3Adb8%3A%3A1%5D"],
)
def test_did_web_names_a_host_not_an_address(host: str) -> None:
    for dev in (False, True):
        with pytest.raises(InvalidIdentifier, match=r"not an IP address"):
            did_web_url(f"did:web:{host}", dev=dev)
