"""The relay's XRPC and operator endpoints, their errors, and the replay window."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.relay.xrpc import PdsUser, read_frames
from tests.services import running_pds, running_plc, running_relay


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, Any]:
    async with http.get(url, params=params, allow_redirects=False) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, r.headers.get("Location")


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, auth: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=auth) as r:
        text = await r.text()
        return r.status, (await r.json()) if text else None


async def test_sync_methods_hosts_and_admin(tmp_path: Path, database_url: str | None) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(tmp_path / "relay", plc.url, database_url=database_url) as relay,
        aiohttp.ClientSession() as http,
    ):
        xrpc = f"{relay.url}/xrpc"
        admin = {"Authorization": aiohttp.encode_basic_auth("admin", relay.relay.admin_password)}

        status, body = await post(
            http, f"{xrpc}/com.atproto.sync.requestCrawl", {"hostname": "no host"}
        )
        assert (status, body["error"]) == (400, "BadRequest")
        status, body = await post(
            http, f"{xrpc}/com.atproto.sync.requestCrawl", {"hostname": "localhost:1"}
        )
        assert (status, body["error"]) == (400, "HostNotFound")
        status, body = await post(http, f"{xrpc}/com.atproto.sync.requestCrawl", {})
        assert (status, body["error"]) == (400, "InvalidRequest")
        status, _ = await post(http, f"{xrpc}/com.atproto.sync.requestCrawl", {"hostname": pds.url})
        assert status == 200
        host = f"localhost:{pds.url.rsplit(':', 1)[1]}"
        stream = next(iter(relay.relay.streams.values()))
        async with asyncio.timeout(10):
            while not stream.connected:
                await asyncio.sleep(0.02)

        alice = await PdsUser.create(http, pds.url, "alice.test")
        await alice.post("hello")
        frames = await read_frames(http, relay.url, 0, 5, timeout=10)
        assert [f.t for f in frames] == ["#identity", "#account", "#commit", "#sync", "#commit"]
        last_rev = frames[-1].body["rev"]

        assert await get(http, f"{xrpc}/com.atproto.sync.getHostStatus", hostname=host) == (
            200,
            {"hostname": host, "seq": stream.host.last_seq, "accountCount": 1, "status": "active"},
        )
        status, body = await get(http, f"{xrpc}/com.atproto.sync.getHostStatus", hostname="x.test")
        assert (status, body["error"]) == (404, "HostNotFound")
        status, body = await get(http, f"{xrpc}/com.atproto.sync.listHosts")
        assert [h["hostname"] for h in body["hosts"]] == [host]

        status, body = await get(http, f"{xrpc}/com.atproto.sync.listRepos")
        assert body["repos"] == [
            {
                "did": alice.did,
                "head": frames[-1].body["commit"].encode(),
                "rev": last_rev,
                "active": True,
            }
        ]
        status, body = await get(http, f"{xrpc}/com.atproto.sync.getLatestCommit", did=alice.did)
        assert body == {"cid": frames[-1].body["commit"].encode(), "rev": last_rev}
        status, body = await get(http, f"{xrpc}/com.atproto.sync.getRepoStatus", did=alice.did)
        assert body == {"did": alice.did, "active": True, "rev": last_rev}
        status, body = await get(
            http, f"{xrpc}/com.atproto.sync.getRepoStatus", did="did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
        )
        assert (status, body["error"]) == (404, "RepoNotFound")
        status, body = await get(http, f"{xrpc}/com.atproto.sync.getRepoStatus", did="not a did")
        assert (status, body["error"]) == (400, "InvalidRequest")
        status, location = await get(http, f"{xrpc}/com.atproto.sync.getRepo", did=alice.did)
        assert status == 302
        port = pds.url.rsplit(":", 1)[1]
        assert location == f"http://localhost:{port}/xrpc/com.atproto.sync.getRepo?did={alice.did}"

        # The operator: takedown stops an account's events and says so on the firehose.
        status, body = await post(http, f"{relay.url}/admin/repo/takeDown", {"did": alice.did})
        assert (status, body["error"]) == (401, "AuthenticationRequired")
        assert (await post(http, f"{relay.url}/admin/repo/takeDown", {"did": alice.did}, admin))[
            0
        ] == 200
        await alice.post("not relayed")
        status, body = await get(http, f"{xrpc}/com.atproto.sync.getLatestCommit", did=alice.did)
        assert (status, body["error"]) == (403, "RepoTakendown")
        assert (
            await post(http, f"{relay.url}/admin/repo/reverseTakedown", {"did": alice.did}, admin)
        )[0] == 200
        frames = await read_frames(http, relay.url, 5, 2, timeout=5)
        assert [(f.t, f.body["active"], f.body.get("status")) for f in frames] == [
            ("#account", False, "takendown"),
            ("#account", True, None),
        ]

        status, body = await post(
            http, f"{relay.url}/admin/pds/changeLimits", {"host": host, "repo_limit": "many"}, admin
        )
        assert (status, body["error"]) == (400, "InvalidRequest")
        limits = {"host": host, "repo_limit": 5000, "trusted": True}
        assert (await post(http, f"{relay.url}/admin/pds/changeLimits", limits, admin))[0] == 200
        assert stream.host.account_limit == 5000 and stream.host.trusted

        async with http.post(
            f"{relay.url}/admin/pds/block", params={"host": host}, headers=admin
        ) as r:
            assert r.status == 200
        status, body = await post(
            http, f"{xrpc}/com.atproto.sync.requestCrawl", {"hostname": pds.url}
        )
        assert (status, body["error"]) == (401, "DomainBan")
        assert not relay.relay.streams
        async with http.post(
            f"{relay.url}/admin/pds/unblock", params={"host": host}, headers=admin
        ) as r:
            assert r.status == 200
        assert relay.relay.streams


async def test_cursors_future_and_outdated(tmp_path: Path, database_url: str | None) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(
            tmp_path / "relay", plc.url, crawl=(pds.url,), database_url=database_url
        ) as relay,
        aiohttp.ClientSession() as http,
    ):
        stream = next(iter(relay.relay.streams.values()))
        async with asyncio.timeout(10):
            while not stream.connected:
                await asyncio.sleep(0.02)
        alice = await PdsUser.create(http, pds.url, "alice.test")
        for i in range(4):
            await alice.post(f"p{i}")
        await read_frames(http, relay.url, 0, 6, timeout=10)

        frames = await read_frames(http, relay.url, 1000, 5, timeout=2)
        assert [(f.op, f.body["error"]) for f in frames] == [(-1, "FutureCursor")]

        # Everything is older than a cutoff in the future: pruning leaves the newest event
        # range empty, and an old cursor starts at the oldest event left, after #info.
        store = relay.relay.store
        row = await store.db.fetchrow("SELECT sequenced_at FROM relay_seq WHERE seq = 4")
        assert row is not None
        assert await relay.relay.prune(row[0] + 1)
        oldest = await store.oldest_seq()
        assert oldest is not None and oldest > 1
        frames = await read_frames(http, relay.url, 0, 2, timeout=5)
        assert frames[0].t == "#info" and frames[0].body["name"] == "OutdatedCursor"
        assert frames[1].body["seq"] == oldest


async def test_a_pds_asks_to_be_crawled_and_siblings_hear_of_it(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_relay(tmp_path / "b", plc.url, database_url=new_database()) as sibling,
        running_relay(
            tmp_path / "a", plc.url, siblings=(sibling.url,), database_url=new_database()
        ) as relay,
        running_pds(tmp_path / "pds", plc.url, relays=(relay.url,)) as pds,
    ):
        host = f"localhost:{pds.url.rsplit(':', 1)[1]}"
        async with asyncio.timeout(10):
            while await relay.relay.host(host) is None or await sibling.relay.host(host) is None:
                await asyncio.sleep(0.02)
