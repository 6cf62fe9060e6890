"""`strata account migrate` between a Strata PDS and the official `@atproto/pds`, both ways,
with Strata's directory, relay and AppView."""

from __future__ import annotations

from pathlib import Path

from tests.migration.network import Kind, migration_network
from tests.migration.tool import (
    alice_and_follower,
    check_moved,
    login,
    migrate_args,
    migrate_with_code,
)


async def move_and_check(tmp_path: Path, old: Kind, new: Kind) -> None:
    async with migration_network(tmp_path, old=old, new=new) as network:
        alice, bob, texts = await alice_and_follower(network)
        args = migrate_args(network, tmp_path / "move.json")
        output = await migrate_with_code(network, alice.did, args)
        assert "records      5" in output and "blobs        1 (1 uploaded)" in output
        moved = await login(network.http, network.new.url, "alice.test")
        await check_moved(
            network.http, network.plc_url, moved, network.new.public_url, network.old.url, bob,
            texts,
        )  # fmt: skip


async def test_strata_to_official(tmp_path: Path) -> None:
    await move_and_check(tmp_path, "strata", "official")


async def test_official_to_strata(tmp_path: Path) -> None:
    await move_and_check(tmp_path, "official", "strata")
