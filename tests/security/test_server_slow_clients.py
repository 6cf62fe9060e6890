"""Clients that send slowly (slowloris) do not take a service's capacity: a request is counted
by admission control only once its body has arrived, a body that trickles is refused (408) or
its connection dropped, headers that trickle end the connection, and a client that goes away
costs one short log line."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from strata.net import body
from strata.net.server import ADMISSION_KEY, create_app
from strata.serve import IDLE_TIMEOUT
from tests.services import service_process, serving

SLOW_SOCKETS = 512
CRAWL = "/xrpc/com.atproto.sync.requestCrawl"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_slow(port: int, count: int, head: bytes) -> list[Connection]:
    """`count` connections to 127.0.0.1:port that each sent `head` and then nothing."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    for _, writer in connections:
        writer.write(head)
    await asyncio.gather(*(w.drain() for _, w in connections))
    return connections


def slow_post(path: str, length: int = 100) -> bytes:
    """A POST's headers and the first byte of its body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n{{"
    ).encode()


async def close_all(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for _, w in connections), return_exceptions=True)


async def answer_or_close(reader: asyncio.StreamReader, within: float) -> bytes:
    """The server's answer on a slow connection (b"" once it closed it), within `within` s."""
    async with asyncio.timeout(within):
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def log_events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def assert_one_line_each(log_path: Path, events: tuple[str, ...]) -> None:
    """No traceback in the log, and one of `events` for each slow client."""
    lines = log_events(log_path)
    assert not any("exception" in line for line in lines)
    assert len([line for line in lines if line["event"] in events]) == SLOW_SOCKETS


@pytest.mark.async_timeout(90)
async def test_512_slow_bodies_leave_a_production_relay_serving(tmp_path: Path) -> None:
    with service_process("relay", tmp_path / "relay", "--log-level", "info") as (url, _):
        slow = await open_slow(port_of(url), SLOW_SOCKETS, slow_post(CRAWL))
        try:
            async with aiohttp.ClientSession() as http:
                # While all 512 hold their requests open, others are answered at once.
                started = time.monotonic()
                async with http.get(f"{url}/xrpc/com.atproto.sync.listHosts") as response:
                    assert response.status == 200
                    assert await response.json() == {"hosts": []}
                async with http.post(f"{url}{CRAWL}", json={"hostname": "no host"}) as response:
                    assert response.status == 400
                    assert (await response.json())["error"] == "BadRequest"
                assert time.monotonic() - started < 2.0
            # The slow ones are refused once their grace has passed.
            answers = await asyncio.gather(
                *(answer_or_close(reader, body.GRACE + 5) for reader, _ in slow[:8])
            )
            assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        finally:
            await close_all(slow)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/xrpc/com.atproto.sync.listHosts") as response,
        ):
            assert await response.json() == {"hosts": []}
    # One short line for each slow client: refused, or gone before that.
    assert_one_line_each(tmp_path / "relay.log", ("request body too slow", "client went away"))


@pytest.mark.async_timeout(60)
async def test_slow_bodies_do_not_fill_a_plc_directory(tmp_path: Path) -> None:
    with service_process("plc", tmp_path / "plc", "--log-level", "info") as (url, _):
        operation = slow_post("/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
        slow = await open_slow(port_of(url), SLOW_SOCKETS, operation)
        try:
            async with aiohttp.ClientSession() as http:
                started = time.monotonic()
                async with http.get(f"{url}/export") as response:
                    assert response.status == 200
                assert time.monotonic() - started < 2.0
        finally:
            await close_all(slow)
        await asyncio.sleep(0.5)
    assert_one_line_each(tmp_path / "plc.log", ("client went away",))


@pytest.mark.async_timeout(IDLE_TIMEOUT + 30)
async def test_headers_that_trickle_end_the_connection(tmp_path: Path) -> None:
    with service_process("relay", tmp_path / "relay") as (url, _):
        started = time.monotonic()
        slow = await open_slow(port_of(url), 64, b"GET /xrpc/_health HTTP/1.1\r\nHo")
        try:
            closed = await asyncio.gather(
                *(answer_or_close(reader, IDLE_TIMEOUT + 10) for reader, _ in slow)
            )
        finally:
            await close_all(slow)
        assert closed == [b""] * 64
        assert IDLE_TIMEOUT - 1 < time.monotonic() - started < IDLE_TIMEOUT + 10


async def test_an_admitted_upload_that_stalls_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A short grace and a high rate, so that the stall shows in a second.
    monkeypatch.setattr(body, "GRACE", 0.5)
    monkeypatch.setattr(body, "MIN_RATE", 4 << 20)
    app = create_app("upload", max_body=16 << 20)
    finished: list[int] = []

    async def upload(request: web.Request) -> web.Response:
        finished.append(len(await request.read()))
        return web.Response(text="stored")

    app.router.add_post("/upload", upload)
    async with serving(app) as url:
        head = (
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8388608\r\n\r\n"
            + b"x" * (body.PREBUFFER + 4096)
        )
        slow = await open_slow(port_of(url), 1, head)
        started = time.monotonic()
        try:
            # More than the read-ahead came at once: the upload is admitted, then it stalls.
            admission = app[ADMISSION_KEY].policy
            async with asyncio.timeout(5):
                while admission.total == 0:
                    await asyncio.sleep(0.01)
            answer = await answer_or_close(slow[0][0], 5)
        finally:
            await close_all(slow)
        assert answer == b"" and time.monotonic() - started < 3
        async with asyncio.timeout(5):
            while admission.total:
                await asyncio.sleep(0.01)
        assert finished == []
        # A whole upload at a normal pace is stored.
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/upload", data=b"y" * (2 << 20)) as response,
        ):
            assert (response.status, await response.text()) == (200, "stored")
        assert finished == [2 << 20]
