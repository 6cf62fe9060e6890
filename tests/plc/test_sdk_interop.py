"""The official Python SDK resolves identities from our directory."""

from __future__ import annotations

from pathlib import Path

from atproto import AsyncIdResolver

from strata.core.crypto import K256Keypair, P256Keypair
from tests.plcops import genesis, update
from tests.services import running_plc

RECOVERY = K256Keypair.from_private_bytes(bytes(range(1, 33)))
PDS = P256Keypair.from_private_bytes(bytes(range(2, 34)))


async def test_official_sdk_resolves_our_documents(
    tmp_path: Path, database_url: str | None
) -> None:
    did, g = genesis([RECOVERY, PDS], PDS, handle="alice.test", pds="http://127.0.0.1:2583")
    moved = update(
        g,
        PDS,
        services={
            "atproto_pds": {
                "type": "AtprotoPersonalDataServer",
                "endpoint": "http://127.0.0.1:2683",
            }
        },
    )
    async with running_plc(tmp_path, database_url=database_url) as plc:
        await plc.directory.submit(did, g)
        await plc.directory.submit(did, moved)
        resolver = AsyncIdResolver(plc_url=plc.url, timeout=5)
        doc = await resolver.did.resolve(did)
        assert doc is not None and doc.id == did
        data = await resolver.did.resolve_atproto_data(did)
        assert data.did == did
        assert data.handle == "alice.test"
        assert data.pds == "http://127.0.0.1:2683"
        assert data.signing_key == RECOVERY.did()
        missing = did[:-1] + ("a" if did[-1] != "a" else "b")
        assert await resolver.did.resolve(missing) is None
