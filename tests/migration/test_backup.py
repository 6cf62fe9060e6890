"""`strata account export` and `import`: a backup restores what the PDS lost."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp

from tests.migration.network import strata_outbox_code
from tests.migration.tool import (
    PNG,
    last_rotation_keys,
    login,
    strata_account,
    strata_account_at_terminal,
    upload,
)
from tests.relay.xrpc import PdsUser
from tests.services import running_pds, running_plc


async def test_backup_restores_a_deleted_post_and_its_blob(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        alice = await PdsUser.create(http, pds.url, "alice.test")
        image = await upload(alice, PNG)
        embed = {"$type": "app.bsky.embed.images", "images": [{"image": image, "alt": "x"}]}
        record = {"$type": "app.bsky.feed.post", "text": "keep me", "embed": embed,
                  "createdAt": "2026-11-21T00:00:00Z"}  # fmt: skip
        post = await alice.call(
            "com.atproto.repo.createRecord",
            {"repo": alice.did, "collection": "app.bsky.feed.post", "record": record},
        )
        backup = tmp_path / "backup"
        account = ("--pds", pds.url, "--account", "alice.test")
        exported = await strata_account("export", *account, "--out", str(backup))
        assert exported.returncode == 0, exported.output
        assert os.stat(backup / "repo.car").st_mode & 0o777 == 0o600

        rkey = post["uri"].rsplit("/", 1)[1]
        await alice.call(
            "com.atproto.repo.deleteRecord",
            {"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey},
        )

        imported = await strata_account("import", *account, "--backup", str(backup))
        assert imported.returncode == 0, imported.output
        assert "Uploaded 1 missing blobs" in imported.output, imported.output
        alice = await login(http, pds.url, "alice.test")
        async with http.get(
            f"{pds.url}/xrpc/com.atproto.repo.getRecord",
            params={"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey},
        ) as response:
            assert (await response.json())["value"]["text"] == "keep me"
        cid = image["ref"]["$link"]  # type: ignore[index]
        async with http.get(
            f"{pds.url}/xrpc/com.atproto.sync.getBlob", params={"did": alice.did, "cid": cid}
        ) as response:
            assert response.status == 200 and await response.read() == PNG

        wrong = await strata_account("import", "--pds", pds.url, "--account", "alice.test",
                                     "--backup", str(tmp_path))  # fmt: skip
        assert wrong.returncode == 1 and "not a Strata account backup" in wrong.output


async def test_rotation_key_code_typed_at_the_terminal(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        alice = await PdsUser.create(http, pds.url, "alice.test")
        key = tmp_path / "key"
        added = await strata_account_at_terminal(
            "add-rotation-key", "--pds", pds.url, "--account", "alice.test", "--key", str(key),
            "--plc", plc.url,
            answer=lambda: strata_outbox_code(tmp_path / "pds", alice.did),
            prompt="Confirmation code:",
        )  # fmt: skip
        assert added.returncode == 0, added.output
        assert "has emailed a confirmation code" in added.output
        keys = await last_rotation_keys(http, plc.url, alice.did)
        assert keys[0] in added.output and len(keys) == 2
