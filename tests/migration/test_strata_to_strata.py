"""`strata account migrate` between two Strata PDSes on a network with a relay and an AppView."""

from __future__ import annotations

import json
from pathlib import Path

from tests.appview.network import Network, appview_network, indexed
from tests.appview.test_api import create
from tests.migration.tool import (
    check_moved,
    login,
    sees,
    strata_account,
    strata_outbox_code,
)
from tests.relay.xrpc import PdsUser

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def upload(user: PdsUser, data: bytes) -> dict[str, object]:
    async with user.http.post(
        f"{user.pds}/xrpc/com.atproto.repo.uploadBlob",
        data=data,
        headers={"Authorization": f"Bearer {user.token}", "Content-Type": "image/png"},
    ) as response:
        body = await response.json()
        assert response.status == 200, body
        blob: dict[str, object] = body["blob"]
        return blob


async def alice_and_follower(network: Network) -> tuple[PdsUser, PdsUser, set[str]]:
    """alice on the first PDS with posts, an image, a profile and preferences; bob on the
    second following her and seeing her posts."""
    old, new = network.pdses
    alice = await PdsUser.create(network.http, old.url, "alice.test")
    bob = await PdsUser.create(network.http, new.url, "bob.test")
    for user in (alice, bob):
        await indexed(network, user)
    await create(bob, "app.bsky.graph.follow", {"subject": alice.did})
    image = await upload(alice, PNG)
    await create(alice, "app.bsky.actor.profile", {"displayName": "Alice", "avatar": image},
                 rkey="self")  # fmt: skip
    texts = {f"alice before the move {i}" for i in range(3)}
    for text in sorted(texts):
        await alice.post(text)
    embed = {"$type": "app.bsky.embed.images", "images": [{"image": image, "alt": "a square"}]}
    await create(alice, "app.bsky.feed.post", {"text": "alice with a picture", "embed": embed})
    texts.add("alice with a picture")
    preferences = [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": False}]
    async with network.http.post(
        f"{alice.pds}/xrpc/app.bsky.actor.putPreferences",
        json={"preferences": preferences},
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as response:
        assert response.status == 200, await response.text()
    await sees(bob, texts, "bob sees alice's posts")
    return alice, bob, texts


async def test_move_between_strata_pdses(tmp_path: Path) -> None:
    async with appview_network(tmp_path) as network:
        old, new = network.pdses
        alice, bob, texts = await alice_and_follower(network)
        state = tmp_path / "move.json"
        args = ("migrate", "--from", old.url, "--account", "alice.test", "--to", new.url,
                "--plc", network.plc_url, "--state", str(state))  # fmt: skip

        plan = await strata_account(*args, "--dry-run")
        assert plan.returncode == 0, plan.output
        assert "[1/9] create the account on the new PDS" in plan.output
        assert "Nothing was changed" in plan.output and not state.exists()

        first = await strata_account(*args)
        assert first.returncode == 1, first.output
        assert "--plc-token" in first.output
        assert "5 records, 1 blobs" in first.output and "blob 1/1" in first.output
        saved = json.loads(state.read_text())
        assert "verify" in saved["done"] and "sign-plc" not in saved["done"]

        code = strata_outbox_code(tmp_path / "pds1", alice.did)
        second = await strata_account(*args, "--plc-token", code)
        assert second.returncode == 0, second.output
        assert "[1/9] create the account on the new PDS (deactivated, same DID): already done" in (
            second.output
        )
        assert f"Moved {alice.did} (alice.test)" in second.output
        assert "records      5" in second.output

        moved = await login(network.http, new.url, "alice.test")
        await check_moved(
            network.http, network.plc_url, moved, new.pds.config.public_url, old.url, bob, texts
        )
        async with network.http.get(
            f"{new.url}/xrpc/app.bsky.actor.getPreferences",
            headers={"Authorization": f"Bearer {moved.token}"},
        ) as response:
            assert (await response.json())["preferences"][0]["enabled"] is False

        again = await strata_account(*args)
        assert again.returncode == 0 and again.output.count("already done") == 9, again.output
