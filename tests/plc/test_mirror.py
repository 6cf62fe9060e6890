"""Mirror mode: copying, verifying and forwarding, from directories that behave and that do not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.plc import operation_cid
from strata.plc.store import Accepted
from tests.plcops import genesis, update
from tests.services import eventually, running_plc, serving

RECOVERY = K256Keypair.from_private_bytes(bytes(range(1, 33)))
PDS = P256Keypair.from_private_bytes(bytes(range(2, 34)))


async def audit(http: aiohttp.ClientSession, url: str, did: str) -> Any:
    async with http.get(f"{url}/{did}/log/audit") as resp:
        return await resp.json() if resp.status == 200 else None


async def test_mirror_copies_history_then_follows_live(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    did, g = genesis([RECOVERY, PDS], PDS)
    u1 = update(g, PDS, alsoKnownAs=["at://stolen.test"])
    fix = update(g, RECOVERY, alsoKnownAs=["at://alice.test"])
    async with (
        running_plc(tmp_path / "primary", database_url=new_database()) as primary,
        aiohttp.ClientSession() as http,
    ):
        await primary.directory.submit(did, g)
        await primary.directory.submit(did, u1)
        async with running_plc(
            tmp_path / "mirror", mirror_of=[primary.url], database_url=new_database()
        ) as mirror:
            await eventually(lambda: _same(http, primary.url, mirror.url, did, 2), 8.0)
            await primary.directory.submit(did, fix)  # arrives live, and nullifies u1
            await eventually(lambda: _same(http, primary.url, mirror.url, did, 3), 8.0)
            entries = await audit(http, mirror.url, did)
            assert [e["nullified"] for e in entries] == [False, True, False]
            async with http.get(f"{mirror.url}/{did}") as resp:
                assert (await resp.json())["alsoKnownAs"] == ["at://alice.test"]

            # Writes go to the primary and come back through the export.
            u2 = update(fix, RECOVERY, alsoKnownAs=["at://alice2.test"])
            async with http.post(f"{mirror.url}/{did}", json=u2) as resp:
                assert resp.status == 200
            await eventually(lambda: _same(http, primary.url, mirror.url, did, 4), 8.0)
            assert await mirror.directory.store.cursor(primary.url) == "seq:4"
            forged = update(u2, K256Keypair.generate(), alsoKnownAs=["at://x.test"])
            async with http.post(f"{mirror.url}/{did}", json=forged) as resp:
                assert resp.status == 400 and (await resp.json())["error"] == "InvalidSignature"


async def _same(http: aiohttp.ClientSession, a: str, b: str, did: str, n: int) -> bool:
    left, right = await audit(http, a, did), await audit(http, b, did)
    if left is None or right is None or len(right) != n:
        return False
    strip = [{k: v for k, v in e.items() if k != "createdAt"} for e in left]
    return strip == [{k: v for k, v in e.items() if k != "createdAt"} for e in right]


async def test_mirror_resumes_from_its_durable_cursor(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    keys = [K256Keypair.from_private_bytes(bytes([i]) * 32) for i in range(1, 6)]
    ops = [genesis([k], k, handle=f"m{i}.test") for i, k in enumerate(keys)]
    mirror_database = new_database()
    async with (
        running_plc(tmp_path / "primary", database_url=new_database()) as primary,
        aiohttp.ClientSession() as http,
    ):
        for did, op in ops[:3]:
            await primary.directory.submit(did, op)
        async with running_plc(
            tmp_path / "mirror", mirror_of=[primary.url], database_url=mirror_database
        ) as mirror:
            await eventually(lambda: _count(mirror, 3), 8.0)
        for did, op in ops[3:]:
            await primary.directory.submit(did, op)
        async with running_plc(
            tmp_path / "mirror", mirror_of=[primary.url], database_url=mirror_database
        ) as mirror:
            await eventually(lambda: _count(mirror, 5), 8.0)
            assert await mirror.directory.store.cursor(primary.url) == "seq:5"
            async with http.get(f"{mirror.url}/export?after=0") as resp:
                lines = [json.loads(x) for x in (await resp.text()).splitlines()]
            assert [line["did"] for line in lines] == [did for did, _ in ops]


async def _count(mirror: Any, n: int) -> bool:
    return bool(await mirror.directory.store.last_seq() == n)


def fake_source(
    lines: list[dict[str, Any]], legacy: bool = False, status: int = 200
) -> web.Application:
    """A directory export that serves fixed lines, possibly forged, possibly in the old format."""

    async def export(request: web.Request) -> web.Response:
        if status != 200:
            return web.Response(status=status)
        after = request.query.get("after", "")
        count = int(request.query.get("count", "1000"))
        if legacy:
            page = [
                line for line in lines if not after or line["createdAt"] > after or after.isdigit()
            ]
        else:
            page = [line for line in lines if line["seq"] > int(after or 0)]
        body = "\n".join(json.dumps(line) for line in page[:count])
        return web.Response(text=body, content_type="application/jsonlines")

    app = web.Application()
    app.router.add_get("/export", export)
    return app


def sequenced(ops: list[tuple[str, dict[str, Any]]], legacy: bool = False) -> list[dict[str, Any]]:
    lines = []
    for i, (did, op) in enumerate(ops, start=1):
        line = Accepted(i, did, str(operation_cid(op)), op, 1_700_000_000_000 + i).export_json()
        if legacy:
            del line["seq"], line["type"]
            line["nullified"] = False
        lines.append(line)
    return lines


async def test_mirror_verifies_what_a_source_sends(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    good = [genesis([k], k) for k in (K256Keypair.generate(), K256Keypair.generate())]
    did, g = genesis([RECOVERY], RECOVERY)
    forged = (did, update(g, K256Keypair.generate(), alsoKnownAs=["at://evil.test"]))
    lines = sequenced([good[0], (did, g), forged, good[1]])
    lines[3]["cid"] = str(operation_cid(good[0][1]))  # a lie about the CID of good[1]
    async with (
        serving(fake_source(lines)) as source,
        running_plc(tmp_path, mirror_of=[source], database_url=new_database()) as mirror,
    ):
        await eventually(lambda: _cursor(mirror, source, "seq:4"), 8.0)
        store = mirror.directory.store
        assert [op.operation for op in await store.ops_for_did(did)] == [g]
        assert await store.last_op(good[0][0]) == good[0][1]
        assert await store.last_op(good[1][0]) is None
        async with aiohttp.ClientSession() as http, http.get(f"{mirror.url}/metrics") as r:
            metrics = await r.text()
        assert f'strata_plc_mirror_rejected_total{{source="{source}"}} 2.0' in metrics


async def _cursor(mirror: Any, source: str, value: str) -> bool:
    return bool(await mirror.directory.store.cursor(source) == value)


async def test_mirror_fails_over_and_reads_the_legacy_export(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    ops = [genesis([k], k) for k in (K256Keypair.generate(), K256Keypair.generate())]
    async with (
        serving(fake_source([], status=503)) as broken,
        serving(fake_source(sequenced(ops, legacy=True), legacy=True)) as legacy,
        running_plc(tmp_path, mirror_of=[broken, legacy], database_url=new_database()) as mirror,
    ):
        await eventually(lambda: _count(mirror, 2), 8.0)
        assert (await mirror.directory.store.cursor(legacy) or "").startswith("ts:")


async def test_mirror_refuses_writes_when_its_primary_is_down(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    did, g = genesis([RECOVERY], RECOVERY)
    async with serving(web.Application()) as gone:
        pass
    async with (
        running_plc(tmp_path, mirror_of=[gone], database_url=new_database()) as mirror,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{mirror.url}/{did}", json=g) as resp:
            body = await resp.json()
        assert resp.status == 502 and body["error"] == "UpstreamFailure"
        assert "read-only mirror" in body["message"]
        assert await mirror.directory.store.last_op(did) is None
