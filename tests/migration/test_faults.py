"""Faults during a move: the new PDS killed mid-import, the old PDS unreachable after service
auth, blobs that fail. Each time the tool stops, and running it again completes the move
with nothing lost or duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from strata.core.car import read_car
from strata.core.repo import Repository
from tests.appview.test_api import create
from tests.migration.network import MigrationNetwork, migration_network
from tests.migration.proxy import FaultProxy, disconnect, fault_proxy
from tests.migration.tool import (
    PNG,
    alice_and_follower,
    check_moved,
    login,
    migrate_args,
    migrate_with_code,
    strata_account,
    upload,
)
from tests.relay.xrpc import PdsUser


async def records(user: PdsUser, pds: str) -> dict[str, str]:
    """Every record of the user's repository on `pds`: path -> CID."""
    async with user.http.get(
        f"{pds}/xrpc/com.atproto.sync.getRepo", params={"did": user.did}
    ) as response:
        root, blocks = read_car(await response.read())
    return {path: str(cid) for path, cid in Repository.load(blocks, root).records()}


async def check_nothing_lost(
    network: MigrationNetwork, alice: PdsUser, before: dict[str, str], blobs: int
) -> None:
    moved = await login(network.http, network.new.url, "alice.test")
    assert await records(moved, network.new.url) == before
    async with network.http.get(
        f"{network.new.url}/xrpc/com.atproto.server.checkAccountStatus",
        headers={"Authorization": f"Bearer {moved.token}"},
    ) as response:
        status = await response.json()
    assert status["expectedBlobs"] == status["importedBlobs"] == blobs
    async with network.http.get(f"{network.new.url}/xrpc/com.atproto.sync.listRepos") as response:
        hosted = [repo["did"] for repo in (await response.json())["repos"]]
    assert hosted.count(alice.did) == 1


async def test_new_pds_killed_mid_import(tmp_path: Path) -> None:
    async with migration_network(tmp_path, new="strata-process") as network:
        alice, bob, texts = await alice_and_follower(network)
        before = await records(alice, network.old.url)

        async def kill_during_import(
            request: web.Request, proxy: FaultProxy
        ) -> web.Response | None:
            if not request.path.endswith("importRepo") or network.new.process is None:
                return None
            data = await request.read()

            async def halves() -> AsyncIterator[bytes]:
                yield data[: len(data) // 2]
                await network.new.kill()  # SIGKILL with half the repository sent
                yield data[len(data) // 2 :]

            try:
                return await proxy.forward(request, halves())
            except OSError:
                return disconnect(request)

        async with fault_proxy(network.new.url, network.http) as (new_url, proxy):
            proxy.faults.append(kill_during_import)
            args = migrate_args(network, tmp_path / "move.json", new=new_url)
            cut = await strata_account(*args)
            assert cut.returncode == 1 and "copy the repository failed" in cut.output, cut.output
            assert network.new.process is not None and network.new.process.returncode is not None

            proxy.faults.clear()
            await network.new.restart()
            output = await migrate_with_code(network, alice.did, args)
            assert "create the account on the new PDS (deactivated, same DID): already done" in (
                output
            )
        await check_nothing_lost(network, alice, before, blobs=1)
        moved = await login(network.http, network.new.url, "alice.test")
        await check_moved(network.http, network.plc_url, moved, network.new.public_url,
                          network.old.url, bob, texts)  # fmt: skip


async def test_old_pds_unreachable_and_blobs_failing(tmp_path: Path) -> None:
    async with migration_network(tmp_path) as network:
        alice, bob, texts = await alice_and_follower(network)
        second = await upload(alice, PNG[::-1])
        embed = {"$type": "app.bsky.embed.images", "images": [{"image": second, "alt": "b"}]}
        await create(alice, "app.bsky.feed.post", {"text": "a second picture", "embed": embed})
        before = await records(alice, network.old.url)
        down = asyncio.Event()
        failures: Counter[str] = Counter()
        # The first blob fails twice (retried within the run), the second three times (the
        # run stops and the next one finishes it).
        fail_times: dict[str, int] = {}

        async def faults(request: web.Request, proxy: FaultProxy) -> web.StreamResponse | None:
            if down.is_set():
                return disconnect(request)
            if request.path.endswith("getServiceAuth"):
                answer = await proxy.forward(request, b"")
                down.set()  # the old PDS goes away right after granting service auth
                return answer
            if request.path.endswith("getBlob"):
                cid = request.query["cid"]
                fail_times.setdefault(cid, 2 if not fail_times else 3)
                if failures[cid] < fail_times[cid]:
                    failures[cid] += 1
                    return web.json_response({"error": "InternalServerError"}, status=500)
            return None

        async with fault_proxy(network.old.url, network.http) as (old_url, proxy):
            proxy.faults.append(faults)
            args = migrate_args(network, tmp_path / "move.json", old=old_url)
            unreachable = await strata_account(*args)
            assert unreachable.returncode == 1, unreachable.output
            assert "copy the repository failed" in unreachable.output

            down.clear()
            blobs_fail = await strata_account(*args)
            assert blobs_fail.returncode == 1, blobs_fail.output
            assert "failed 3 times" in blobs_fail.output and "already done" in blobs_fail.output
            assert blobs_fail.output.count("  blob 1/2") == 1

            output = await migrate_with_code(network, alice.did, args)
            assert "  blob 1/1" in output
            assert sorted(failures.values()) == [2, 3]
            assert proxy.seen.count("com.atproto.server.getServiceAuth") == 1
        await check_nothing_lost(network, alice, before, blobs=2)
        moved = await login(network.http, network.new.url, "alice.test")
        await check_moved(network.http, network.plc_url, moved, network.new.public_url,
                          network.old.url, bob, texts | {"a second picture"})  # fmt: skip
