"""An account moves between two Strata PDSes with the reference's migration calls, including
the PLC operation signed by the old PDS after an emailed confirmation code."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from strata.core.car import read_car
from strata.core.crypto import parse_multikey
from strata.core.repo import Repository
from tests.interop.test_repo_roundtrip import Xrpc
from tests.services import running_pds, running_plc


async def test_account_moves_and_activates(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "old", plc.url) as old_pds,
        running_pds(tmp_path / "new", plc.url) as new_pds,
        aiohttp.ClientSession() as http,
    ):
        old, new = Xrpc(http, old_pds.url), Xrpc(http, new_pds.url)
        alice = await old.create_account("alice.test")
        did = alice["did"]
        for i in range(5):
            await old.post(did, f"before the move {i}")

        server = await new.call("com.atproto.server.describeServer")
        grant = await old.call(
            "com.atproto.server.getServiceAuth",
            params={"aud": server["did"], "lxm": "com.atproto.server.createAccount"},
        )
        await new.create_account("alice-new.test", token=grant["token"], did=did)
        await new.call(
            "com.atproto.repo.importRepo",
            data=await old.call("com.atproto.sync.getRepo", params={"did": did}),
        )
        status = await new.call("com.atproto.server.checkAccountStatus")
        assert status["activated"] is False and status["validDid"] is False
        assert status["indexedRecords"] == 5

        # Activating before the DID points here is refused.
        async with http.post(
            f"{new.url}/xrpc/com.atproto.server.activateAccount",
            headers={"Authorization": f"Bearer {new.token}"},
        ) as resp:
            assert resp.status == 400

        credentials = await new.call("com.atproto.identity.getRecommendedDidCredentials")
        await old.call("com.atproto.identity.requestPlcOperationSignature", {})
        mail = next((tmp_path / "old" / "mail" / "outbox").iterdir()).read_text()
        token = re.search(r"code: (\S+)", mail).group(1)  # type: ignore[union-attr]
        signed = await old.call(
            "com.atproto.identity.signPlcOperation", {"token": token, **credentials}
        )
        await new.call("com.atproto.identity.submitPlcOperation", signed)
        await new.call("com.atproto.server.activateAccount", {})
        await old.call("com.atproto.server.deactivateAccount", {})

        status = await new.call("com.atproto.server.checkAccountStatus")
        assert status["activated"] is True and status["validDid"] is True
        await new.post(did, "after the move")

        # The repository now verifies with the new key from the DID document.
        async with http.get(f"{plc.url}/{did}") as resp:
            doc = await resp.json()
        assert doc["service"][0]["serviceEndpoint"] == new_pds.pds.config.public_url
        key = parse_multikey(doc["verificationMethod"][0]["publicKeyMultibase"])
        root, blocks = read_car(await new.call("com.atproto.sync.getRepo", params={"did": did}))
        repo = Repository.load(blocks, root)
        assert repo.commit.verify(key)
        assert len(list(repo.records())) == 6

        async with http.get(
            f"{old.url}/xrpc/com.atproto.sync.getRepoStatus", params={"did": did}
        ) as resp:
            assert (await resp.json())["status"] == "deactivated"
