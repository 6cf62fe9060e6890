"""`com.atproto.repo.uploadBlob` with a service token, as a video service writes its result
back to the account's PDS: a token the account asked for (`getServiceAuth`, `aud` this PDS,
`lxm` uploadBlob) uploads into the account's repository; a token for another method or
service, signed by another key or from an account hosted elsewhere, is refused and stores
nothing. The limit on a blob's size is the reference's 5 MiB unless configured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from strata.core.crypto import K256Keypair
from strata.core.jwt import sign_service_jwt
from tests.relay.xrpc import PdsUser
from tests.services import running_pds, running_plc

UPLOAD = "com.atproto.repo.uploadBlob"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 2000


async def service_token(user: PdsUser, aud: str, lxm: str) -> str:
    async with user.http.get(
        f"{user.pds}/xrpc/com.atproto.server.getServiceAuth",
        params={"aud": aud, "lxm": lxm},
        headers={"Authorization": f"Bearer {user.token}"},
    ) as response:
        body = await response.json()
        assert response.status == 200, body
        token: str = body["token"]
        return token


async def upload(http: aiohttp.ClientSession, pds: str, token: str) -> tuple[int, Any]:
    async with http.post(
        f"{pds}/xrpc/{UPLOAD}",
        data=VIDEO,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "video/mp4"},
    ) as response:
        return response.status, await response.json()


async def test_a_service_uploads_for_the_account(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as running,
        running_pds(tmp_path / "small", plc.url, blob_upload_limit=1000) as small,
        aiohttp.ClientSession() as http,
    ):
        pds, did = running.url, running.pds.config.service_did
        alice = await PdsUser.create(http, pds, "alice.test")
        async with http.get(f"{pds}/xrpc/com.atproto.server.describeServer") as response:
            assert (await response.json())["blobUploadLimit"] == 5 * 1024 * 1024

        token = await service_token(alice, did, UPLOAD)
        status, body = await upload(http, pds, token)
        assert status == 200, body
        blob = body["blob"]
        assert (blob["mimeType"], blob["size"]) == ("video/mp4", len(VIDEO))
        # The blob is alice's: her post can embed it.
        await alice.call(
            "com.atproto.repo.createRecord",
            {"repo": alice.did, "collection": "app.bsky.feed.post",
             "record": {"$type": "app.bsky.feed.post", "text": "a video",
                        "createdAt": "2026-11-21T00:00:00.000Z",
                        "embed": {"$type": "app.bsky.embed.video", "video": blob}}},
        )  # fmt: skip
        async with http.get(
            f"{pds}/xrpc/com.atproto.sync.listBlobs", params={"did": alice.did}
        ) as response:
            assert (await response.json())["cids"] == [blob["ref"]["$link"]]

        elsewhere = await PdsUser.create(http, small.url, "bob.test")
        refusals: list[tuple[str, int, str]] = [
            (await service_token(alice, did, "com.atproto.repo.createRecord"),
             401, "BadJwtLexiconMethod"),
            (await service_token(alice, "did:web:video.example", UPLOAD), 401, "BadJwtAudience"),
            (sign_service_jwt(K256Keypair.generate(), alice.did, did, UPLOAD, time.time()),
             401, "BadJwtSignature"),
            # An account of the other PDS (both are did:web:localhost here): not hosted here.
            (await service_token(elsewhere, did, UPLOAD), 403, "AccountNotFound"),
        ]  # fmt: skip
        for bad, expected, error in refusals:
            status, body = await upload(http, pds, bad)
            assert (status, body["error"]) == (expected, error), body
        async with http.get(
            f"{pds}/xrpc/com.atproto.sync.listBlobs", params={"did": alice.did}
        ) as response:
            assert (await response.json())["cids"] == [blob["ref"]["$link"]]

        # The configured limit holds for service tokens too.
        status, body = await upload(
            http, small.url, await service_token(elsewhere, small.pds.config.service_did, UPLOAD)
        )
        assert (status, body["error"]) == (413, "PayloadTooLarge")
