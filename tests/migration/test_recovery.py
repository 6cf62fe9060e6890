"""A user who added their own rotation key and kept a backup moves to a new PDS after the old
one is gone for good, and their followers still see them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.migration.network import migration_network
from tests.migration.tool import (
    alice_and_follower,
    check_moved,
    did_document,
    last_rotation_keys,
    login,
    strata_account,
)


async def test_recovery_with_own_rotation_key(tmp_path: Path) -> None:
    async with migration_network(tmp_path, old="strata-process") as network:
        alice, bob, texts = await alice_and_follower(network)
        old, new = network.old, network.new
        key = tmp_path / "alice-rotation.key"
        add = ("add-rotation-key", "--pds", old.url, "--account", "alice.test", "--key", str(key),
               "--plc", network.plc_url)  # fmt: skip

        asks = await strata_account(*add)
        assert asks.returncode == 1 and "--plc-token" in asks.output, asks.output
        assert key.stat().st_mode & 0o777 == 0o600
        added = await strata_account(*add, "--plc-token", old.plc_code(alice.did))
        assert added.returncode == 0, added.output
        user_key = added.output.split("Rotation key ", 1)[1].split()[0]
        keys = await last_rotation_keys(network.http, network.plc_url, alice.did)
        assert keys[0] == user_key and len(keys) == 2
        again = await strata_account(*add)
        assert again.returncode == 0 and "already lists it" in again.output

        backup = tmp_path / "backup"
        exported = await strata_account(
            "export", "--pds", old.url, "--account", "alice.test", "--out", str(backup)
        )
        assert exported.returncode == 0, exported.output
        assert "5 records" in exported.output and "1 blobs (1 fetched" in exported.output
        account = json.loads((backup / "account.json").read_text())
        assert account["did"] == alice.did and len(account["blobs"]) == 1
        refreshed = await strata_account(
            "export", "--pds", old.url, "--account", "alice.test", "--out", str(backup)
        )
        assert "(0 fetched, 1 already there)" in refreshed.output, refreshed.output

        await old.kill()  # gone for good

        state = tmp_path / "recovery.json"
        recover = ("migrate", "--backup", str(backup), "--rotation-key", str(key),
                   "--to", new.url, "--email", "alice@example.test", "--plc", network.plc_url,
                   "--state", str(state))  # fmt: skip
        plan = await strata_account(*recover, "--dry-run")
        assert plan.returncode == 0 and "with your rotation key" in plan.output, plan.output
        moved_out = await strata_account(*recover)
        assert moved_out.returncode == 0, moved_out.output
        assert "pointing the DID's signing key at an interim key" in moved_out.output
        assert "not touched (moved from a backup)" in moved_out.output

        document = await did_document(network.http, network.plc_url, alice.did)
        assert document["service"][0]["serviceEndpoint"] == new.public_url
        keys = await last_rotation_keys(network.http, network.plc_url, alice.did)
        assert keys[0] == user_key and len(keys) == 2, "the user's key stays first"
        moved = await login(network.http, new.url, "alice.test")
        await check_moved(network.http, network.plc_url, moved, new.public_url, None, bob, texts)
