"""`strata plc` over HTTP: the reference directory's routes, answers and errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.plc import operation_cid
from tests.plcops import genesis, tombstone, update
from tests.services import eventually, running_plc

RECOVERY = K256Keypair.from_private_bytes(bytes(range(1, 33)))
PDS = P256Keypair.from_private_bytes(bytes(range(2, 34)))


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, data=json.dumps(body)) as resp:
        if resp.status == 200:
            assert await resp.text() == "OK"
            return 200, None
        return resp.status, await resp.json()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        text = await resp.text()
        if resp.content_type == "application/jsonlines":
            return resp.status, [json.loads(line) for line in text.splitlines()]
        return resp.status, json.loads(text) if text else None


async def test_lifecycle_of_a_did(tmp_path: Path, database_url: str | None) -> None:
    did, g = genesis([RECOVERY, PDS], PDS, handle="alice.test")
    u1 = update(g, PDS, alsoKnownAs=["at://bob.test"])
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        assert (await get(http, f"{plc.url}/{did}"))[0] == 404
        assert await post(http, f"{plc.url}/{did}", g) == (200, None)
        assert await post(http, f"{plc.url}/{did}", u1) == (200, None)

        status, doc = await get(http, f"{plc.url}/{did}")
        assert status == 200 and doc["alsoKnownAs"] == ["at://bob.test"]
        status, data = await get(http, f"{plc.url}/{did}/data")
        assert data == {
            "did": did,
            "verificationMethods": {"atproto": RECOVERY.did()},
            "rotationKeys": [RECOVERY.did(), PDS.did()],
            "alsoKnownAs": ["at://bob.test"],
            "services": {
                "atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": "https://pds.test"}
            },
        }
        assert (await get(http, f"{plc.url}/{did}/log"))[1] == [g, u1]
        assert (await get(http, f"{plc.url}/{did}/log/last"))[1] == u1

        # The recovery key takes the DID back within the window: u1 is nullified.
        fix = update(g, RECOVERY, rotationKeys=[RECOVERY.did()])
        assert await post(http, f"{plc.url}/{did}", fix) == (200, None)
        status, audit = await get(http, f"{plc.url}/{did}/log/audit")
        assert [(e["cid"], e["nullified"]) for e in audit] == [
            (str(operation_cid(g)), False),
            (str(operation_cid(u1)), True),
            (str(operation_cid(fix)), False),
        ]
        assert all(e["createdAt"].endswith("Z") and len(e["createdAt"]) == 24 for e in audit)
        assert (await get(http, f"{plc.url}/{did}/log"))[1] == [g, fix]

        end = tombstone(fix, RECOVERY)
        assert await post(http, f"{plc.url}/{did}", end) == (200, None)
        status, body = await get(http, f"{plc.url}/{did}")
        assert status == 404 and "not available" in body["message"]
        assert (await get(http, f"{plc.url}/{did}/log/last"))[1] == end


async def test_one_batch_holds_an_operation_and_the_recovery_that_nullifies_it(
    tmp_path: Path, database_url: str | None
) -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    u1 = update(g, PDS, alsoKnownAs=["at://stolen.test"])
    fix = update(g, RECOVERY, alsoKnownAs=["at://alice.test"])
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        # Queued together, so that the writer checks all three in one transaction.
        accepted = await asyncio.gather(*(plc.directory.submit(did, op) for op in (g, u1, fix)))
        assert [a.seq for a in accepted] == [1, 2, 3]
        _, audit = await get(http, f"{plc.url}/{did}/log/audit")
        assert [(e["operation"], e["nullified"]) for e in audit] == [
            (g, False),
            (u1, True),
            (fix, False),
        ]
        assert (await get(http, f"{plc.url}/{did}/log"))[1] == [g, fix]


async def test_rejections_change_nothing(tmp_path: Path, database_url: str | None) -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    other = K256Keypair.from_private_bytes(bytes(range(5, 37)))
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        assert (await post(http, f"{plc.url}/{did}", g))[0] == 200
        cases = [
            ("forged", update(g, other, alsoKnownAs=["at://x.test"]), 400, "InvalidSignature"),
            ("replay", g, 400, "MisorderedOperation"),
            ("shape", {"type": "plc_operation"}, 400, "ImproperOperation"),
            ("not json", None, 400, "InvalidRequest"),
        ]
        for name, body, status, error in cases:
            data = b"{not json" if body is None else json.dumps(body).encode()
            async with http.post(f"{plc.url}/{did}", data=data) as resp:
                answer = await resp.json()
                assert (resp.status, answer["error"]) == (status, error), name
                assert answer["message"]
        async with http.post(f"{plc.url}/{did}", data=b"x" * 70_000) as resp:
            assert resp.status == 413
        async with http.post(f"{plc.url}/did:plc:UPPER", data=json.dumps(g)) as resp:
            assert resp.status == 400
        async with http.get(f"{plc.url}/did:web:example.com") as resp:
            assert resp.status == 400
        assert (await get(http, f"{plc.url}/{did}/log"))[1] == [g]
        _, exported = await get(http, f"{plc.url}/export?after=0")
        assert len(exported) == 1
        async with http.get(f"{plc.url}/metrics") as resp:
            metrics = await resp.text()
        assert 'strata_plc_operations_total{outcome="rejected",source="client"}' in metrics


async def test_export_pages(tmp_path: Path, database_url: str | None) -> None:
    keys = [K256Keypair.from_private_bytes(bytes([i]) * 32) for i in range(1, 8)]
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        created = [genesis([key], key, handle=f"u{i}.test") for i, key in enumerate(keys)]
        results = await asyncio.gather(*(post(http, f"{plc.url}/{did}", op) for did, op in created))
        assert all(status == 200 for status, _ in results)

        _, page1 = await get(http, f"{plc.url}/export?after=0&count=3")
        assert [line["seq"] for line in page1] == [1, 2, 3]
        assert all(line["type"] == "sequenced_op" and "nullified" not in line for line in page1)
        _, page2 = await get(http, f"{plc.url}/export?after=3&count=1000")
        assert [line["seq"] for line in page2] == [4, 5, 6, 7]

        _, legacy = await get(http, f"{plc.url}/export?count=2")
        assert len(legacy) == 2 and all(
            "seq" not in line and line["nullified"] is False for line in legacy
        )
        _, rest = await get(http, f"{plc.url}/export?after={legacy[-1]['createdAt']}")
        assert all(line["createdAt"] > legacy[-1]["createdAt"] for line in rest)

        for query in ("count=0", "count=x", "after=yesterday"):
            async with http.get(f"{plc.url}/export?{query}") as resp:
                assert resp.status == 400, query


async def test_export_stream_backfills_then_follows(
    tmp_path: Path, database_url: str | None
) -> None:
    keys = [K256Keypair.from_private_bytes(bytes([i]) * 32) for i in range(1, 5)]
    ops = [genesis([key], key, handle=f"s{i}.test") for i, key in enumerate(keys)]
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        for did, op in ops[:2]:
            await post(http, f"{plc.url}/{did}", op)
        async with http.ws_connect(f"{plc.url}/export/stream?cursor=0") as ws:
            first = [json.loads((await ws.receive(timeout=5)).data) for _ in range(2)]
            assert [e["seq"] for e in first] == [1, 2]
            for did, op in ops[2:]:
                await post(http, f"{plc.url}/{did}", op)
            live = [json.loads((await ws.receive(timeout=5)).data) for _ in range(2)]
            assert [(e["seq"], e["did"]) for e in live] == [(3, ops[2][0]), (4, ops[3][0])]
        async with http.ws_connect(f"{plc.url}/export/stream?cursor=99") as ws:
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.extra == "FutureCursor"
        async with http.get(f"{plc.url}/export/stream") as resp:
            assert resp.status == 426


async def test_slow_stream_consumer_is_dropped(tmp_path: Path, database_url: str | None) -> None:
    async with running_plc(tmp_path, database_url=database_url) as plc, aiohttp.ClientSession():
        directory = plc.directory
        sub = directory.subscribe()
        keys = [K256Keypair.generate() for _ in range(510)]
        await asyncio.gather(*(directory.submit(*genesis([k], k)) for k in keys))

        async def dropped() -> bool:
            return sub.overflowed.is_set() and sub not in directory.subscribers

        await eventually(dropped, 10.0, "the slow subscriber is dropped")


async def test_concurrent_updates_to_one_did_never_fork(
    tmp_path: Path, database_url: str | None
) -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        await post(http, f"{plc.url}/{did}", g)
        rivals = [update(g, PDS, alsoKnownAs=[f"at://r{i}.test"]) for i in range(8)]
        results = await asyncio.gather(*(post(http, f"{plc.url}/{did}", op) for op in rivals))
        assert sorted(status for status, _ in results) == [200] + [400] * 7
        assert len((await get(http, f"{plc.url}/{did}/log"))[1]) == 2


async def test_restart_keeps_everything(tmp_path: Path, database_url: str | None) -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        await post(http, f"{plc.url}/{did}", g)
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        assert (await get(http, f"{plc.url}/{did}/log"))[1] == [g]
        async with http.get(f"{plc.url}/xrpc/_health") as resp:
            assert resp.status == 200 and "version" in await resp.json()
