"""A repository moves from Strata's PDS into the official PDS and back, as a migration does:
service auth from the old PDS, createAccount with the existing DID on the new one, importRepo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from strata.core.car import read_car
from strata.core.repo import Repository
from tests.interop.peers import official_network
from tests.services import running_pds

POST = "app.bsky.feed.post"


class Xrpc:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.token: str | None = None

    async def call(
        self,
        nsid: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        token: str | None = None,
    ) -> Any:
        headers = {}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        if data is not None:
            headers["Content-Type"] = "application/vnd.ipld.car"
        method = "POST" if body is not None or data is not None else "GET"
        async with self.http.request(
            method, f"{self.url}/xrpc/{nsid}", json=body, data=data, params=params, headers=headers
        ) as resp:
            payload = await resp.read()
            assert resp.status == 200, f"{nsid} on {self.url}: {resp.status} {payload[:300]!r}"
            if resp.content_type == "application/json":
                return await resp.json()
            return payload

    async def create_account(
        self, handle: str, token: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {"handle": handle, "email": f"{handle}@example.test", "password": "pw", **extra}
        session = await self.call("com.atproto.server.createAccount", body, token=token)
        self.token = session["accessJwt"]
        return session  # type: ignore[no-any-return]

    async def post(self, did: str, text: str) -> None:
        record = {"$type": POST, "text": text, "createdAt": "2026-11-21T00:00:00.000Z"}
        await self.call(
            "com.atproto.repo.createRecord", {"repo": did, "collection": POST, "record": record}
        )


async def _move(source: Xrpc, target: Xrpc, did: str, handle: str) -> Repository:
    """Copy `did`'s repository from `source` into a new (deactivated) account on `target`."""
    described = await target.call("com.atproto.server.describeServer")
    grant = await source.call(
        "com.atproto.server.getServiceAuth",
        params={"aud": described["did"], "lxm": "com.atproto.server.createAccount"},
    )
    await target.create_account(handle, did=did, token=grant["token"])
    car = await source.call("com.atproto.sync.getRepo", params={"did": did})
    await target.call("com.atproto.repo.importRepo", data=car)
    root, blocks = read_car(car)
    return Repository.load(blocks, root)


async def _records(xrpc: Xrpc, did: str) -> dict[str, str]:
    """Path -> record CID, from the repository the PDS serves (its owner may read it while the
    account is still deactivated)."""
    root, blocks = read_car(await xrpc.call("com.atproto.sync.getRepo", params={"did": did}))
    records = {path: str(cid) for path, cid in Repository.load(blocks, root).records()}
    assert len(records) == 30
    return records


async def _move_and_compare(source: Xrpc, target: Xrpc, name: str, text: str) -> None:
    """Write 30 posts on `source`, move the account to `target`, and compare both sides."""
    account = await source.create_account(f"{name}.test")
    did = account["did"]
    for i in range(30):
        await source.post(did, f"{text} {i}")
    exported = await _move(source, target, did, f"{name}2.test")
    head = await target.call("com.atproto.sync.getLatestCommit", params={"did": did})
    assert head["cid"] == str(exported.commit_cid)
    assert await _records(target, did) == await _records(source, did)


async def test_repository_moves_to_the_official_pds_and_back(tmp_path: Path) -> None:
    async with (
        official_network(tmp_path) as net,
        running_pds(tmp_path / "strata", net.plc_url) as ours,
        aiohttp.ClientSession() as http,
    ):
        strata, official = Xrpc(http, ours.url), Xrpc(http, net.pds_url)
        await _move_and_compare(strata, Xrpc(http, net.pds_url), "alice", "from strata")
        await _move_and_compare(official, Xrpc(http, ours.url), "bob", "from the official PDS")
