"""Notification preferences (`getPreferences`, `putPreferencesV2`) and push registrations
(`registerPush`, `unregisterPush`), kept per account in the AppView's database on SQLite and
Postgres. The PDS sends a push registration to the service its body names (`serviceDid`): the
configured AppView, or any other by the `#bsky_notif` service of its DID document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.appview.network import appview_network
from tests.appview.test_api import accounts, view
from tests.appview.test_bookmarks import call
from tests.relay.xrpc import PdsUser
from tests.services import RunningAppView, running_appview

GET = "app.bsky.notification.getPreferences"
PUT = "app.bsky.notification.putPreferencesV2"
REGISTER = "app.bsky.notification.registerPush"
UNREGISTER = "app.bsky.notification.unregisterPush"

EVERYTHING = {"include": "all", "list": True, "push": True}
DEFAULTS = {
    "chat": {"include": "all", "push": True},
    **{name: EVERYTHING for name in ("follow", "like", "likeViaRepost", "mention", "quote",
                                     "reply", "repost", "repostViaRepost")},
    **{name: {"list": True, "push": True}
       for name in ("starterpackJoined", "subscribedPost", "unverified", "verified")},
}  # fmt: skip


async def put(user: PdsUser, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    async with user.http.post(
        f"{user.pds}/xrpc/{PUT}", json=body, headers={"Authorization": f"Bearer {user.token}"}
    ) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == expect, answer
        return answer


async def registrations(appview: RunningAppView, did: str) -> list[tuple[Any, ...]]:
    db = appview.appview.db
    assert db is not None
    rows = await db.fetch(
        "SELECT platform, app_id, token, service_did, age_restricted FROM push_registration "
        "WHERE did = ? ORDER BY token",
        did,
    )
    return [tuple(r) for r in rows]


async def test_notification_preferences(tmp_path: Path, database_url: str | None) -> None:
    async with appview_network(tmp_path, database_url) as network:
        alice, bob = await accounts(network, "alice", "bob")
        assert (await view(alice, GET))["preferences"] == DEFAULTS

        quiet_likes = {"include": "follows", "list": True, "push": False}
        answer = await put(alice, {"like": quiet_likes})
        assert answer["preferences"] == {**DEFAULTS, "like": quiet_likes}
        # Another put keeps what it does not name; `chat` is deprecated and stays as it is.
        no_follows = {"include": "all", "list": False, "push": False}
        await put(alice, {"follow": no_follows, "chat": {"include": "accepted", "push": False},
                          "verified": {"list": False, "push": True}})  # fmt: skip
        stored = (await view(alice, GET))["preferences"]
        assert stored == {**DEFAULTS, "like": quiet_likes, "follow": no_follows,
                          "verified": {"list": False, "push": True}}  # fmt: skip
        # Per account.
        assert (await view(bob, GET))["preferences"] == DEFAULTS
        # Incomplete preferences are refused and change nothing.
        refused = await put(alice, {"like": {"include": "all"}}, expect=400)
        assert refused["error"] == "InvalidRequest"
        assert (await view(alice, GET))["preferences"] == stored


async def test_push_registrations(tmp_path: Path, database_url: str | None) -> None:
    async with (
        appview_network(tmp_path, database_url) as network,
        running_appview(tmp_path / "notifier", network.plc_url, ()) as notifier,
    ):
        (alice,) = await accounts(network, "alice")
        device = {"token": "device-1", "platform": "ios", "appId": "xyz.blueskyweb.app"}
        # To the configured AppView, named by its DID.
        await call(alice, REGISTER, {**device, "serviceDid": network.appview.did})
        await call(alice, REGISTER, {**device, "serviceDid": network.appview.did,
                                     "ageRestricted": True})  # fmt: skip
        assert await registrations(network.appview, alice.did) == [
            ("ios", "xyz.blueskyweb.app", "device-1", network.appview.did, 1)
        ]
        # To another notification service: found through its DID document.
        web = {"token": "browser", "platform": "web", "appId": "app.example"}
        await call(alice, REGISTER, {**web, "serviceDid": notifier.did})
        assert await registrations(notifier, alice.did) == [
            ("web", "app.example", "browser", notifier.did, 0)
        ]
        assert await registrations(network.appview, alice.did) == [
            ("ios", "xyz.blueskyweb.app", "device-1", network.appview.did, 1)
        ]
        # A DID with no notification service, a platform nobody pushes to, and a service
        # token for one service with the body naming another are refused.
        unknown = await call(
            alice, REGISTER, {**device, "serviceDid": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"}, 400
        )
        assert "notification service" in unknown["message"]
        bad = await call(alice, REGISTER, {**device, "platform": "fax",
                                           "serviceDid": network.appview.did}, 400)  # fmt: skip
        assert bad["message"] == 'Unsupported platform: must be "ios", "android", or "web".'
        async with alice.http.get(
            f"{alice.pds}/xrpc/com.atproto.server.getServiceAuth",
            params={"aud": network.appview.did, "lxm": REGISTER},
            headers={"Authorization": f"Bearer {alice.token}"},
        ) as response:
            token = (await response.json())["token"]
        async with alice.http.post(
            f"{network.appview.url}/xrpc/{REGISTER}",
            json={**web, "serviceDid": notifier.did},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 400
            assert (await response.json())["message"] == "Invalid serviceDid."
        assert len(await registrations(network.appview, alice.did)) == 1

        await call(alice, UNREGISTER, {**device, "serviceDid": network.appview.did})
        await call(alice, UNREGISTER, {**web, "serviceDid": notifier.did})
        assert await registrations(network.appview, alice.did) == []
        assert await registrations(notifier, alice.did) == []
