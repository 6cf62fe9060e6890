"""Two `strata relay` processes on one Postgres database, following one `strata pds`: both
serve one firehose, and killing either of them (the one that ingests, or the other) mid-load
neither loses nor repeats an event for consumers that reconnect to the survivor."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from strata.core.frames import decode_frame
from tests.postgres import PostgresCluster
from tests.relay.xrpc import PdsUser, read_frames
from tests.services import free_port, running_pds, running_plc, running_relay, start_strata

pytestmark = pytest.mark.async_timeout(180)

USERS = 4
ROUNDS = 40
KILL_AFTER = 12
"""Rounds of posts before the kill; the rest are written while the relays recover."""


class Consumer:
    """Reads a relay's firehose from the start, reconnecting with its last cursor to the first
    of `urls` that answers whenever the connection ends."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str]) -> None:
        self.http = http
        self.urls = urls
        self.seqs: list[int] = []
        self.commits: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for url in self.urls:
                cursor = self.seqs[-1] if self.seqs else 0
                ws_url = url.replace("http://", "ws://")
                ws_url += f"/xrpc/com.atproto.sync.subscribeRepos?cursor={cursor}"
                try:
                    async with self.http.ws_connect(ws_url, max_msg_size=8 << 20) as ws:
                        async for message in ws:
                            if message.type != aiohttp.WSMsgType.BINARY:
                                break
                            frame = decode_frame(message.data)
                            if frame.op == -1:
                                self.errors.append(str(frame.body.get("error")))
                                break
                            self.seqs.append(frame.body["seq"])
                            if frame.t == "#commit":
                                self.commits.append((frame.body["repo"], frame.body["rev"]))
                except (aiohttp.ClientError, OSError):
                    pass
            await asyncio.sleep(0.1)

    def by_account(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = collections.defaultdict(list)
        for repo, rev in self.commits:
            out[repo].append(rev)
        return out

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def connected_hosts(http: aiohttp.ClientSession, url: str, password: str) -> int:
    auth = {"Authorization": aiohttp.encode_basic_auth("admin", password)}
    async with http.get(f"{url}/admin/pds/list", headers=auth) as r:
        return sum(h["connected"] for h in (await r.json())["hosts"])


@pytest.mark.parametrize("victim", ["ingesting", "other"])
async def test_killing_either_relay_loses_and_repeats_nothing(
    tmp_path: Path, postgres_cluster: PostgresCluster, victim: str
) -> None:
    database_url = postgres_cluster.new_database()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        args = ["--plc-url", plc.url, "--dev", "--database-url", database_url, "--crawl", pds.url]
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        procs = []
        try:
            for number, port in enumerate(ports):
                procs.append(await start_strata("relay", tmp_path / f"r{number}", port, *args))
            passwords = [
                json.loads((tmp_path / f"r{n}" / "secrets.json").read_text())["admin_password"]
                for n in range(2)
            ]
            # The first process to start ingests; the second serves from the shared tables.
            async with asyncio.timeout(20):
                while await connected_hosts(http, urls[0], passwords[0]) != 1:
                    await asyncio.sleep(0.1)
            assert await connected_hosts(http, urls[1], passwords[1]) == 0

            users = [await PdsUser.create(http, pds.url, f"user{n}.test") for n in range(USERS)]
            consumers = [Consumer(http, urls), Consumer(http, urls[::-1])]
            for round_ in range(ROUNDS):
                if round_ == KILL_AFTER:
                    assert all(c.commits for c in consumers)
                    killed = procs[0 if victim == "ingesting" else 1]
                    killed.send_signal(signal.SIGKILL)
                    await killed.wait()
                await asyncio.gather(*(u.post(f"round {round_}") for u in users))

            own: dict[str, list[str]] = collections.defaultdict(list)
            for frame in await read_frames(http, pds.url, 0, 10_000, timeout=3):
                if frame.t == "#commit":
                    own[frame.body["repo"]].append(frame.body["rev"])
            total = sum(len(revs) for revs in own.values())
            assert total >= USERS * ROUNDS
            async with asyncio.timeout(60):
                while any(len(c.commits) < total for c in consumers):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            survivor = 1 if victim == "ingesting" else 0
            assert await connected_hosts(http, urls[survivor], passwords[survivor]) == 1
            for consumer in consumers:
                await consumer.stop()
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.terminate()
                    await proc.wait()

    for consumer in consumers:
        assert consumer.errors == []
        # Numbered by the database from 1, in commit order: no gap, no repeat.
        assert consumer.seqs == list(range(1, len(consumer.seqs) + 1))
        assert consumer.by_account() == own
    assert consumers[0].seqs == consumers[1].seqs


async def test_what_the_other_process_is_asked_reaches_the_ingesting_one(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    database_url = postgres_cluster.new_database()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(tmp_path / "a", plc.url, database_url=database_url) as ingesting,
        running_relay(tmp_path / "b", plc.url, database_url=database_url) as other,
        aiohttp.ClientSession() as http,
    ):
        assert ingesting.relay.leading and not other.relay.leading
        async with http.post(
            f"{other.url}/xrpc/com.atproto.sync.requestCrawl", json={"hostname": pds.url}
        ) as r:
            assert r.status == 200
        async with asyncio.timeout(10):
            while not any(s.connected for s in ingesting.relay.streams.values()):
                await asyncio.sleep(0.02)
        assert not other.relay.streams
        alice = await PdsUser.create(http, pds.url, "alice.test")
        await alice.post("hello")
        assert len(await read_frames(http, other.url, 0, 5, timeout=10)) == 5

        admin = {"Authorization": aiohttp.encode_basic_auth("admin", other.relay.admin_password)}
        async with http.post(
            f"{other.url}/admin/repo/takeDown", json={"did": alice.did}, headers=admin
        ) as r:
            assert r.status == 200
        frames = await read_frames(http, other.url, 0, 6, timeout=10)
        assert [f.t for f in frames] == [
            "#identity",
            "#account",
            "#commit",
            "#sync",
            "#commit",
            "#account",
        ]
        assert (frames[-1].body["active"], frames[-1].body["status"]) == (False, "takendown")
        assert frames == await read_frames(http, ingesting.url, 0, 6, timeout=10)
        async with asyncio.timeout(10):
            while await ingesting.relay.store.commands():
                await asyncio.sleep(0.02)


async def test_a_process_that_loses_its_connection_stops_ingesting(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    database_url = postgres_cluster.new_database()
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(
            tmp_path / "a", plc.url, crawl=(pds.url,), database_url=database_url
        ) as first,
        running_relay(
            tmp_path / "b", plc.url, crawl=(pds.url,), database_url=database_url
        ) as second,
        aiohttp.ClientSession() as http,
    ):
        assert first.relay.leading and not second.relay.leading
        async with asyncio.timeout(10):
            while not any(s.connected for s in first.relay.streams.values()):
                await asyncio.sleep(0.02)
        alice = await PdsUser.create(http, pds.url, "alice.test")
        for i in range(5):
            await alice.post(f"before {i}")
        # A host is followed from its live tail until a cursor of it is committed.
        assert len(await read_frames(http, first.url, 0, 9, timeout=10)) == 9
        # The connection holding the right to ingest is cut (as a network fault would): the
        # first process stops, the second takes over from the committed cursor.
        session = first.relay._session
        assert session is not None
        terminator = await asyncpg.connect(database_url)
        try:
            await terminator.execute(
                "SELECT pg_terminate_backend($1)", session.conn.get_server_pid()
            )
        finally:
            await terminator.close()
        for i in range(5):
            await alice.post(f"during {i}")
        async with asyncio.timeout(20):
            while first.relay.leading or not second.relay.leading:
                await asyncio.sleep(0.05)
        assert not first.relay.streams
        for i in range(5):
            await alice.post(f"after {i}")

        own = [f.body["rev"] for f in await read_frames(http, pds.url, 0, 100, timeout=2)
               if f.t == "#commit"]  # fmt: skip
        for url in (first.url, second.url):
            frames = await read_frames(http, url, 0, len(own) + 3, timeout=10)
            assert [f.body["seq"] for f in frames] == list(range(1, len(frames) + 1))
            assert [f.body["rev"] for f in frames if f.t == "#commit"] == own
