"""Several `strata plc` processes over one Postgres database: a DID's log, the export and its
stream are the same whichever process a client reaches, conflicting operations sent to two
processes at once are accepted once, and killing a process loses nothing it acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.plc import validate_operation_log
from strata.plc.cli import plc_command
from tests.plcops import genesis, update
from tests.postgres import PostgresCluster
from tests.services import (
    eventually,
    free_port,
    metric,
    running_plc,
    start_strata,
    stop_workers,
    worker_pids,
    worker_replaced,
)

RECOVERY = K256Keypair.from_private_bytes(bytes(range(1, 33)))
PDS = P256Keypair.from_private_bytes(bytes(range(2, 34)))

pytestmark = pytest.mark.async_timeout(120)


async def post(http: aiohttp.ClientSession, url: str, did: str, op: Any) -> tuple[int, Any]:
    """(status, error body) of submitting `op`; status 0 when the process did not answer."""
    try:
        async with http.post(f"{url}/{did}", json=op) as resp:
            body = await resp.text()
            return resp.status, None if resp.status == 200 else json.loads(body)
    except aiohttp.ClientError:
        return 0, None


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, url
        return await resp.json()


async def export(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    """The whole sequenced export, page by page."""
    lines: list[dict[str, Any]] = []
    for _ in range(100):
        async with http.get(f"{url}/export?after={len(lines)}&count=1000") as resp:
            page = [json.loads(line) for line in (await resp.text()).splitlines()]
        if not page:
            return lines
        lines += page
    raise AssertionError("the export does not end")


@asynccontextmanager
async def directories(
    tmp_path: Path, database_url: str, count: int
) -> AsyncIterator[tuple[list[str], list[asyncio.subprocess.Process]]]:
    """`count` `strata plc` processes on one database, each on its own port."""
    ports = [free_port() for _ in range(count)]
    procs = []
    try:
        for number, port in enumerate(ports):
            procs.append(
                await start_strata(
                    "plc", tmp_path / f"plc{number}", port, "--database-url", database_url
                )
            )
        yield [f"http://127.0.0.1:{port}" for port in ports], procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()


def conflicting_pairs(count: int) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[Any, Any]]]:
    """`count` new DIDs, and for each two different updates of its genesis signed by the same
    key: whichever comes second extends a log that has moved on, and is refused."""
    created = [genesis([RECOVERY, PDS], PDS, handle=f"u{i}.test") for i in range(count)]
    pairs = [
        (
            update(op, PDS, alsoKnownAs=[f"at://a{i}.test"]),
            update(op, PDS, alsoKnownAs=[f"at://b{i}.test"]),
        )
        for i, (_, op) in enumerate(created)
    ]
    return created, pairs


async def check_pairs(
    http: aiohttp.ClientSession,
    urls: Sequence[str],
    created: list[tuple[str, dict[str, Any]]],
    pairs: list[tuple[Any, Any]],
    answers: list[tuple[int, Any]],
) -> None:
    """Exactly one of each pair was accepted, the other refused as a directory refuses an
    operation whose `prev` is no longer the last: the log is the same through every URL."""
    for i, (did, first_op) in enumerate(created):
        first, second = answers[2 * i], answers[2 * i + 1]
        assert sorted([first[0], second[0]]) == [200, 400], (did, first, second)
        refused = second if first[0] == 200 else first
        assert refused[1]["error"] == "InvalidSignature"
        winner = pairs[i][0] if first[0] == 200 else pairs[i][1]
        audits = [await get_json(http, f"{url}/{did}/log/audit") for url in urls]
        assert all(audit == audits[0] for audit in audits)
        assert [entry["operation"] for entry in audits[0]] == [first_op, winner]
        assert not any(entry["nullified"] for entry in audits[0])


async def test_conflicting_operations_through_two_processes(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    created, pairs = conflicting_pairs(50)
    async with (
        directories(tmp_path, postgres_cluster.new_database(), 2) as (urls, _),
        aiohttp.ClientSession() as http,
    ):
        made = await asyncio.gather(
            *(post(http, urls[i % 2], did, op) for i, (did, op) in enumerate(created))
        )
        assert all(status == 200 for status, _ in made)
        streams = [await http.ws_connect(f"{url}/export/stream?cursor=0") for url in urls]

        sends = []
        for i, ((did, _), (a, b)) in enumerate(zip(created, pairs, strict=True)):
            # Each process gets one of the pair, and the first of them alternately.
            sends += [post(http, urls[i % 2], did, a), post(http, urls[1 - i % 2], did, b)]
        await check_pairs(http, urls, created, pairs, list(await asyncio.gather(*sends)))

        exports = [await export(http, url) for url in urls]
        assert exports[0] == exports[1]
        assert [line["seq"] for line in exports[0]] == list(range(1, 101))
        # Each process's stream carries what both accepted, in the export's order.
        for ws in streams:
            seen = [json.loads((await ws.receive(timeout=10)).data) for _ in range(100)]
            assert seen == exports[0]
            await ws.close()


async def test_killing_one_process_loses_nothing_acknowledged(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    keys = [K256Keypair.generate() for _ in range(300)]
    chains = {}
    for key in keys:
        did, op = genesis([key], key)
        chains[did] = [op, update(op, key, alsoKnownAs=["at://next.test"])]
    acknowledged: dict[str, list[dict[str, Any]]] = {did: [] for did in chains}
    database = postgres_cluster.new_database()
    async with (
        directories(tmp_path, database, 2) as (urls, procs),
        aiohttp.ClientSession() as http,
    ):

        async def submit_chain(number: int, did: str) -> None:
            for step, op in enumerate(chains[did]):
                # The genesis goes to one process, the update to the other.
                status, _ = await post(http, urls[(number + step) % 2], did, op)
                if status != 200:
                    return
                acknowledged[did].append(op)

        writers = asyncio.gather(*(submit_chain(n, did) for n, did in enumerate(chains)))
        for _ in range(500):
            if sum(len(ops) for ops in acknowledged.values()) >= 150:
                break
            await asyncio.sleep(0.01)
        os.kill(procs[0].pid, signal.SIGKILL)
        await procs[0].wait()
        await writers
        total = sum(len(ops) for ops in acknowledged.values())
        assert 150 <= total < 600, "the kill should land mid-run"

        stored = 0
        for did, ops in acknowledged.items():
            async with http.get(f"{urls[1]}/{did}/log") as resp:
                log = await resp.json() if resp.status == 200 else []
            assert log[: len(ops)] == ops
            if log:
                assert validate_operation_log(did, log) is not None
            stored += len(log)
        lines = await export(http, urls[1])
        assert [line["seq"] for line in lines] == list(range(1, stored + 1))

        # Started again, the killed process serves the same export.
        port = int(urls[0].rsplit(":", 1)[1])
        procs[0] = await start_strata("plc", tmp_path / "plc0", port, "--database-url", database)
        assert await export(http, urls[0]) == lines


async def answering_worker(http: aiohttp.ClientSession, url: str) -> int:
    """The number of the worker that answers a health check."""
    async with http.get(f"{url}/xrpc/_health") as resp:
        worker: int = (await resp.json())["worker"]
        return worker


async def test_workers_share_one_port(tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = postgres_cluster.new_database()
    proc = await start_strata(
        "plc", tmp_path / "plc", port, "--database-url", database, "--workers", "2"
    )
    try:
        workers = worker_pids(proc.pid)
        assert len(workers) == 2
        created, pairs = conflicting_pairs(30)
        # A connection per request, so that the kernel spreads them over both workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            made = await asyncio.gather(*(post(http, url, did, op) for did, op in created))
            assert all(status == 200 for status, _ in made)
            sends = []
            for (did, _), (a, b) in zip(created, pairs, strict=True):
                sends += [post(http, url, did, a), post(http, url, did, b)]
            await check_pairs(http, [url], created, pairs, list(await asyncio.gather(*sends)))
            assert [line["seq"] for line in await export(http, url)] == list(range(1, 61))
            assert {await answering_worker(http, url) for _ in range(40)} == {0, 1}
            # Both workers accepted some of the 60, and whichever answers counts them all.
            series = 'strata_plc_operations_total{outcome="accepted",source="client"}'
            assert {await metric(http, url, series) for _ in range(20)} == {60.0}

            # A worker that dies is replaced; the other serves meanwhile.
            os.kill(workers[0], signal.SIGKILL)
            assert (await get_json(http, f"{url}/{created[0][0]}/data"))["did"] == created[0][0]

            await worker_replaced(proc.pid, workers[0], 10.0)
            assert len(await export(http, url)) == 60
        await stop_workers(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_one_worker_mirrors(tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = postgres_cluster.new_database()
    created = [genesis([RECOVERY], RECOVERY, handle=f"m{i}.test") for i in range(20)]
    async with running_plc(tmp_path / "primary") as primary, aiohttp.ClientSession() as http:
        for did, op in created[:10]:
            await primary.directory.submit(did, op)
        proc = await start_strata(
            "plc", tmp_path / "mirror", port, "--database-url", database,
            "--workers", "2", "--mirror-of", primary.url,
        )  # fmt: skip
        try:
            for did, op in created[10:]:
                await primary.directory.submit(did, op)

            async def copied() -> int:
                return len(await export(http, url))

            await eventually(copied, 15.0, "the mirror copies the primary", lambda n: n == 20)
            # One process follows the primary's stream; the other serves what it copies.
            assert len(primary.directory.subscribers) == 1
            await asyncio.sleep(1.5)
            assert len(primary.directory.subscribers) == 1
        finally:
            proc.terminate()
            await proc.wait()


def test_workers_need_postgres(tmp_path: Path) -> None:
    result = CliRunner().invoke(plc_command, ["--workers", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--workers 2 needs --database-url" in result.output
