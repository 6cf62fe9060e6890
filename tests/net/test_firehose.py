"""The shared event-stream server: one copy of each frame, and slow consumers closed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from strata.core.frames import FrameError, decode_frame, message_frame, websocket_message
from strata.net.firehose import Broadcaster, ConsumerTooSlow, serve_event_stream
from tests.services import serving


class MemoryLog:
    """An event log held in memory."""

    def __init__(self, window_bytes: int) -> None:
        self.broadcaster = Broadcaster(window_bytes)
        self.frames: list[tuple[int, bytes]] = []

    @property
    def last_seq(self) -> int:
        return self.frames[-1][0] if self.frames else 0

    async def oldest_seq(self) -> int | None:
        return self.frames[0][0] if self.frames else None

    async def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return [f for f in self.frames if f[0] > after][:limit]

    def add(self, count: int, size: int = 10) -> None:
        batch = []
        for _ in range(count):
            seq = self.last_seq + 1
            batch.append((seq, message_frame("#commit", {"seq": seq, "pad": b"x" * size})))
            self.frames.append(batch[-1])
        self.broadcaster.publish(batch)


def test_websocket_message_lengths() -> None:
    for size, head in ((5, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)):
        message = websocket_message(b"a" * size)
        assert message[0] == 0x82 and len(message) == head + size


def test_read_skips_what_the_consumer_already_has() -> None:
    log = MemoryLog(window_bytes=1 << 20)
    log.add(5)
    messages, position, last = log.broadcaster.read(0, after_seq=3)
    assert len(messages) == 2 and position == 5 and last == 5


def test_a_consumer_out_of_the_window_is_too_slow() -> None:
    log = MemoryLog(window_bytes=1_000)
    log.add(20)
    try:
        log.broadcaster.read(0, after_seq=0)
    except ConsumerTooSlow:
        pass
    else:
        raise AssertionError("a position behind the window must be too slow")


def test_the_window_is_capped_in_bytes_and_drops_the_oldest_first() -> None:
    log = MemoryLog(window_bytes=4 << 20)
    # Many small frames: more than a count cap of old would have kept, all within the bytes.
    log.add(30_000)
    assert log.broadcaster.read(0, after_seq=0)[1] == 30_000
    # A few large ones push the oldest out, and what is held stays under the cap.
    for _ in range(8):
        log.add(1, size=1 << 20)
        assert log.broadcaster.held_bytes <= 4 << 20
    with pytest.raises(ConsumerTooSlow):
        log.broadcaster.read(0, after_seq=0)
    messages, _, last = log.broadcaster.read(log.broadcaster.end - 1, after_seq=0)
    assert last == log.last_seq and len(messages) == 1


def stream_app(log: MemoryLog) -> web.Application:
    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        cursor = request.query.get("cursor")
        return await serve_event_stream(
            "test", log, request, None if cursor is None else int(cursor)
        )

    app.router.add_get("/sub", handler)
    return app


async def seqs_received(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[int]:
    async with asyncio.timeout(10):
        return [decode_frame((await ws.receive()).data).body["seq"] for _ in range(count)]


async def test_live_consumers_and_a_slow_one(tmp_path: object) -> None:
    log = MemoryLog(window_bytes=10 << 20)
    app = stream_app(log)
    async with serving(app) as url, aiohttp.ClientSession() as http:
        ws_url = url.replace("http", "ws") + "/sub"
        fast = await http.ws_connect(ws_url)
        slow = await http.ws_connect(ws_url, autoclose=False)
        await asyncio.sleep(0.1)
        # Large frames fill the slow consumer's socket buffers, so it falls out of the window.
        for _ in range(40):
            log.add(10, size=200_000)
            got = [decode_frame((await fast.receive()).data).body["seq"] for _ in range(10)]
            assert got == list(range(log.last_seq - 9, log.last_seq + 1))
            await asyncio.sleep(0)
        frames = []
        async with asyncio.timeout(10):
            while True:
                message = await slow.receive()
                if message.type != aiohttp.WSMsgType.BINARY:
                    break
                frames.append(decode_frame(message.data))
                if frames[-1].op == -1:
                    break
        assert frames[-1].op == -1 and frames[-1].body["error"] == "ConsumerTooSlow"
        assert len(frames) < 401
        await fast.close()
        await slow.close()


async def test_a_consumer_that_lags_catches_up_with_every_frame_once() -> None:
    log = MemoryLog(window_bytes=64 << 20)
    async with serving(stream_app(log)) as url, aiohttp.ClientSession() as http:
        ws_url = url.replace("http", "ws") + "/sub"
        lagging = await http.ws_connect(ws_url, max_msg_size=0)
        await asyncio.sleep(0.1)
        # More than its connection's buffers hold while it reads nothing: the broadcaster lets
        # it go, and it reads the rest from the window once it drains.
        for _ in range(30):
            log.add(10, size=100_000)
            await asyncio.sleep(0)
        assert await seqs_received(lagging, 300) == list(range(1, 301))
        log.add(5)
        assert await seqs_received(lagging, 5) == list(range(301, 306))
        await lagging.close()


async def test_frames_stored_before_they_are_published_are_not_sent_twice() -> None:
    log = MemoryLog(window_bytes=1 << 20)
    log.add(3)
    # Durable but not yet published, as when a consumer replays between a commit and its
    # publication: the replay sends them, and the publication must not send them again.
    pending = [(seq, message_frame("#commit", {"seq": seq})) for seq in (4, 5)]
    log.frames.extend(pending)
    async with serving(stream_app(log)) as url, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url.replace("http", "ws") + "/sub?cursor=0")
        assert await seqs_received(ws, 5) == [1, 2, 3, 4, 5]
        await asyncio.sleep(0.1)
        log.broadcaster.publish([*pending, (6, message_frame("#commit", {"seq": 6}))])
        log.frames.append((6, b""))
        assert await seqs_received(ws, 1) == [6]
        await ws.close()


async def test_frames_published_while_a_replay_page_is_read_are_sent() -> None:
    class SlowLog(MemoryLog):
        async def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
            page = [f for f in self.frames if f[0] > after][:limit]
            if not page and self.last_seq < 3:
                # Stored and published while the empty last page is on its way back.
                self.add(2)
            await asyncio.sleep(0.05)
            return page

    log = SlowLog(window_bytes=1 << 20)
    log.frames.append((1, message_frame("#commit", {"seq": 1})))
    async with serving(stream_app(log)) as url, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url.replace("http", "ws") + "/sub?cursor=0")
        # The second page is empty, and 2 and 3 are published meanwhile: they come live.
        assert await seqs_received(ws, 3) == [1, 2, 3]
        await ws.close()


@given(st.binary(max_size=300))
def test_decode_frame_rejects_or_parses_anything(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError:
        return
    assert frame.op in (1, -1) and isinstance(frame.body, dict)
