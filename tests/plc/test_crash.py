"""A directory killed with SIGKILL mid-write keeps every operation it acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from strata.core.crypto import K256Keypair
from strata.core.plc import validate_operation_log
from tests.plcops import genesis, update
from tests.services import free_port, start_strata


async def test_acknowledged_operations_survive_sigkill(
    tmp_path: Path, database_url: str | None
) -> None:
    port = free_port()
    database = () if database_url is None else ("--database-url", database_url)
    url = f"http://127.0.0.1:{port}"
    keys = [K256Keypair.generate() for _ in range(1000)]
    created = [genesis([key], key) for key in keys]
    chains = {
        did: [op, update(op, key, alsoKnownAs=["at://next.test"])]
        for (did, op), key in zip(created, keys, strict=True)
    }
    acknowledged: dict[str, list[dict]] = {did: [] for did in chains}

    async def submit_chain(http: aiohttp.ClientSession, did: str) -> None:
        for op in chains[did]:
            try:
                async with http.post(f"{url}/{did}", json=op) as resp:
                    if resp.status != 200:
                        return
            except aiohttp.ClientError:
                return
            acknowledged[did].append(op)

    proc = await start_strata("plc", tmp_path, port, *database)
    async with aiohttp.ClientSession() as http:
        writers = asyncio.gather(*(submit_chain(http, did) for did in chains))
        for _ in range(200):  # kill once a few hundred writes are acknowledged
            if sum(len(ops) for ops in acknowledged.values()) >= 300:
                break
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        await writers
    total = sum(len(ops) for ops in acknowledged.values())
    assert 0 < total < 2000, "the kill should land mid-run"

    proc = await start_strata("plc", tmp_path, port, *database)
    try:
        async with aiohttp.ClientSession() as http:
            for did, ops in acknowledged.items():
                if not ops:
                    continue
                async with http.get(f"{url}/{did}/log") as resp:
                    log = await resp.json()
                assert log[: len(ops)] == ops
                assert validate_operation_log(did, log) is not None
    finally:
        proc.terminate()
        await proc.wait()
