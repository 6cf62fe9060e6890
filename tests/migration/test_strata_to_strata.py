"""`strata account migrate` between two Strata PDSes on a network with a relay and an AppView."""

from __future__ import annotations

import json
from pathlib import Path

from tests.migration.network import migration_network
from tests.migration.tool import (
    alice_and_follower,
    check_moved,
    login,
    migrate_args,
    strata_account,
)


async def test_move_between_strata_pdses(tmp_path: Path) -> None:
    async with migration_network(tmp_path) as network:
        old, new = network.old, network.new
        alice, bob, texts = await alice_and_follower(network)
        state = tmp_path / "move.json"
        args = migrate_args(network, state)

        # The old PDS may also be found from the account's DID (or handle).
        by_did = ["migrate", "--from", alice.did, "--to", new.url, "--plc", network.plc_url,
                  "--state", str(state)]  # fmt: skip
        plan = await strata_account(*by_did, "--dry-run")
        assert plan.returncode == 0, plan.output
        assert "[1/9] create the account on the new PDS" in plan.output
        assert f"from {old.public_url} to {new.url}" in plan.output
        assert "The old PDS holds 5 records and 1 blobs" in plan.output
        assert "Nothing was changed" in plan.output and not state.exists()

        first = await strata_account(*args)
        assert first.returncode == 1, first.output
        assert "--plc-token" in first.output
        assert "5 records, 1 blobs" in first.output and "blob 1/1" in first.output
        saved = json.loads(state.read_text())
        assert "verify" in saved["done"] and "sign-plc" not in saved["done"]

        code = old.plc_code(alice.did)
        second = await strata_account(*args, "--plc-token", code)
        assert second.returncode == 0, second.output
        assert "[1/9] create the account on the new PDS (deactivated, same DID): already done" in (
            second.output
        )
        assert f"Moved {alice.did} (alice.test)" in second.output
        assert "records      5" in second.output

        moved = await login(network.http, new.url, "alice.test")
        await check_moved(network.http, network.plc_url, moved, new.public_url, old.url, bob, texts)
        async with network.http.get(
            f"{new.url}/xrpc/app.bsky.actor.getPreferences",
            headers={"Authorization": f"Bearer {moved.token}"},
        ) as response:
            assert (await response.json())["preferences"][0]["enabled"] is False

        again = await strata_account(*args)
        assert again.returncode == 0 and again.output.count("already done") == 9, again.output
