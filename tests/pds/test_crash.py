"""A PDS killed with SIGKILL during a stream of writes keeps every write it acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from strata.core.car import read_car
from strata.core.crypto import parse_multikey
from strata.core.repo import Repository
from tests.services import free_port, running_plc, start_strata

WRITERS = 4


async def _create_account(http: aiohttp.ClientSession, url: str, handle: str) -> tuple[str, str]:
    body = {"handle": handle, "email": f"{handle}@example.test", "password": "pw-" + handle}
    async with http.post(f"{url}/xrpc/com.atproto.server.createAccount", json=body) as resp:
        assert resp.status == 200, await resp.text()
        out = await resp.json()
    return out["did"], out["accessJwt"]


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    acknowledged: dict[str, list[str]] = {}

    async def write(http: aiohttp.ClientSession, did: str, token: str) -> None:
        for i in range(2000):
            record = {
                "$type": "app.bsky.feed.post",
                "text": f"post {i}",
                "createdAt": "2026-11-21T00:00:00.000Z",
            }
            try:
                async with http.post(
                    f"{url}/xrpc/com.atproto.repo.createRecord",
                    json={"repo": did, "collection": "app.bsky.feed.post", "record": record},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    if resp.status != 200:
                        return
                    acknowledged[did].append((await resp.json())["uri"])
            except (TimeoutError, aiohttp.ClientError):
                return

    async with running_plc(tmp_path / "plc") as plc:
        args = ("--plc-url", plc.url, "--dev")
        proc = await start_strata("pds", tmp_path / "pds", port, *args)
        async with aiohttp.ClientSession() as http:
            accounts = [await _create_account(http, url, f"writer{i}.test") for i in range(WRITERS)]
            for did, _ in accounts:
                acknowledged[did] = []
            writers = asyncio.gather(*(write(http, did, token) for did, token in accounts))
            for _ in range(500):  # kill once a few hundred writes are acknowledged
                if sum(map(len, acknowledged.values())) >= 300:
                    break
                await asyncio.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            await writers
        total = sum(map(len, acknowledged.values()))
        assert 300 <= total < WRITERS * 2000, "the kill should land mid-run"

        proc = await start_strata("pds", tmp_path / "pds", port, *args)
        try:
            async with aiohttp.ClientSession() as http:
                for did, uris in acknowledged.items():
                    async with http.get(
                        f"{url}/xrpc/com.atproto.sync.getRepo", params={"did": did}
                    ) as resp:
                        assert resp.status == 200
                        root, blocks = read_car(await resp.read())
                    repo = Repository.load(blocks, root)
                    async with http.get(f"{plc.url}/{did}") as resp:
                        doc = await resp.json()
                    key = parse_multikey(doc["verificationMethod"][0]["publicKeyMultibase"])
                    assert repo.commit.verify(key)
                    assert repo.tree.check() >= len(uris)
                    paths = {path for path, _ in repo.records()}
                    missing = [u for u in uris if u.split("/", 3)[3] not in paths]
                    assert not missing, f"{len(missing)} acknowledged writes lost for {did}"
                    async with http.get(
                        f"{url}/xrpc/com.atproto.sync.getLatestCommit", params={"did": did}
                    ) as resp:
                        assert (await resp.json())["cid"] == str(root)
        finally:
            proc.terminate()
            await proc.wait()
