"""`requestCrawl` cannot turn a relay against its own network: outside development every host
that is, or resolves to, an address that is not public is refused (checked on the address each
connection opens to), redirects are never followed (crawl checks, hosts' firehoses, repository
fetches), and every failure gets the same answer, so the relay is no port scanner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from strata.net.public_fetch import guarded_session
from strata.net.repo_fetch import RepoFetchFailed, fetch_repo
from tests.services import (
    free_port,
    popen_strata,
    running_plc,
    running_relay,
    serving,
    stop_process,
    wait_healthy,
)

CRAWL = "/xrpc/com.atproto.sync.requestCrawl"
GENERIC = {"error": "HostNotFound", "message": "host server unreachable or not a PDS"}


class Listener:
    """A TCP port on 127.0.0.x that counts the connections made to it."""

    def __init__(self) -> None:
        self.connections = 0

    @contextlib.asynccontextmanager
    async def on(self, host: str, port: int) -> AsyncIterator[None]:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        server = await asyncio.start_server(accept, host, port)
        try:
            yield
        finally:
            server.close()
            await server.wait_closed()


class Counting:
    """An HTTP server answering every path with `answer`, counting the requests."""

    def __init__(self, status: int, location: str | None = None) -> None:
        self.status, self.location, self.hits = status, location, 0

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        async def answer(request: web.Request) -> web.Response:
            self.hits += 1
            headers = {} if self.location is None else {"Location": self.location}
            return web.json_response({"did": "did:web:x"}, status=self.status, headers=headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        async with serving(app) as url:
            yield url


async def crawl(http: aiohttp.ClientSession, relay: str, hostname: str) -> tuple[int, object]:
    """The status and JSON body (None when empty) of a requestCrawl."""
    async with http.post(f"{relay}{CRAWL}", json={"hostname": hostname}) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def hosts(http: aiohttp.ClientSession, relay: str) -> list[object]:
    async with http.get(f"{relay}/xrpc/com.atproto.sync.listHosts") as response:
        return list((await response.json())["hosts"])


def private_name() -> str:
    """A host name that resolves to a loopback address on this machine, without DNS."""
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    assert addresses and all(a.startswith("127.") or a == "::1" for a in addresses), addresses
    return name


@pytest.mark.async_timeout(60)
async def test_a_production_relay_refuses_hosts_that_are_not_public(tmp_path: Path) -> None:
    port = free_port()
    process, _ = popen_strata("relay", tmp_path / "relay", port)
    relay = f"http://127.0.0.1:{port}"
    literals = ["127.0.0.2", "0.0.0.0", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"]
    # Forms of 127.0.0.1 that are names to a URL parser but addresses to the resolver.
    disguised = ["2130706433", "0x7f000001", "127.1", "https://2130706433", private_name()]
    try:
        await asyncio.to_thread(wait_healthy, relay, process)
        async with aiohttp.ClientSession() as http:
            for hostname in literals:
                status, answer = await crawl(http, relay, hostname)
                assert status == 400 and answer["error"] == "BadRequest", (hostname, answer)  # type: ignore[index]
            for hostname in disguised:
                assert await crawl(http, relay, hostname) == (400, GENERIC), hostname
            assert await hosts(http, relay) == []
    finally:
        stop_process(process, grace=10)


@pytest.mark.async_timeout(60)
async def test_no_connection_reaches_a_private_port_443(tmp_path: Path) -> None:
    listener = Listener()
    try:
        async with listener.on("127.0.0.1", 443), listener.on("127.0.0.2", 443):
            pass
    except PermissionError:
        pytest.skip("binding port 443 on loopback needs privileges this run lacks")
    port = free_port()
    process, _ = popen_strata("relay", tmp_path / "relay", port)
    relay = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_healthy, relay, process)
        async with (
            listener.on("127.0.0.1", 443),
            listener.on("127.0.0.2", 443),
            aiohttp.ClientSession() as http,
        ):
            for hostname in ("127.0.0.2", "2130706433", "127.1", private_name()):
                status, _ = await crawl(http, relay, hostname)
                assert status == 400
        assert listener.connections == 0
    finally:
        stop_process(process, grace=10)


async def test_every_failure_gets_the_same_answer_and_redirects_are_not_followed(
    tmp_path: Path,
) -> None:
    target = Counting(200)
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_relay(tmp_path / "relay", plc.url) as relay,
        target.serving() as target_url,
        Counting(500).serving() as failing,
        Counting(404).serving() as missing,
        Counting(302, f"{target_url}/xrpc/com.atproto.server.describeServer").serving() as moved,
        aiohttp.ClientSession() as http,
    ):
        closed = f"http://127.0.0.1:{free_port()}"
        answers = [await crawl(http, relay.url, url) for url in (failing, missing, moved, closed)]
        assert answers == [(400, GENERIC)] * 4
        assert target.hits == 0
        assert await hosts(http, relay.url) == []
        # A host that answers is followed (development mode allows loopback).
        assert (await crawl(http, relay.url, target_url))[0] == 200
        assert len(await hosts(http, relay.url)) == 1


async def test_a_host_firehose_that_redirects_is_not_followed(tmp_path: Path) -> None:
    target = Counting(200)
    async with target.serving() as target_url:
        redirect = Counting(302, f"{target_url}/xrpc/com.atproto.sync.subscribeRepos")
        async with (
            redirect.serving() as redirecting,
            running_plc(tmp_path / "plc") as plc,
            running_relay(tmp_path / "relay", plc.url, crawl=(redirecting,)) as relay,
        ):
            stream = next(iter(relay.relay.streams.values()))
            async with asyncio.timeout(10):
                while redirect.hits < 2:
                    await asyncio.sleep(0.05)
            assert not stream.connected and stream.failures >= 1
    assert target.hits == 0


async def test_a_repository_fetch_does_not_follow_a_redirect() -> None:
    target = Counting(200)
    async with target.serving() as target_url:
        moved = Counting(302, f"{target_url}/xrpc/com.atproto.sync.getRepo?did=did:plc:x")
        async with moved.serving() as moved_url, aiohttp.ClientSession() as http:
            with pytest.raises(RepoFetchFailed, match="302"):
                await fetch_repo(http, moved_url, "did:plc:x", timeout=5)
        assert (moved.hits, target.hits) == (1, 0)


async def test_connections_are_checked_on_the_address_they_open_to() -> None:
    target = Counting(200)
    async with target.serving() as url:
        port = url.rsplit(":", 1)[1]
        timeout = aiohttp.ClientTimeout(total=5)
        async with guarded_session(4, public_only=True, timeout=timeout) as session:
            for host in ("127.0.0.1", "localhost", "2130706433", "127.1", private_name()):
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(f"http://{host}:{port}/"):
                        pass
        assert target.hits == 0
        async with (
            guarded_session(4, public_only=False, timeout=timeout) as session,
            session.get(f"{url}/") as response,
        ):
            assert response.status == 200
        assert target.hits == 1
