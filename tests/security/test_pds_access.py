"""What a PDS must refuse to strangers and to weaker credentials: repositories that are taken
down or deactivated, repository imports with an app password, sign-in lockouts of another
user, uploads that nothing references, and private files."""

from __future__ import annotations

import stat
from pathlib import Path

import aiohttp

from strata.pds.auth import LoginLimiter
from tests.pds.test_bad_input import POST, Env, assert_error, basic, pds_env, post_record

LIST = "com.atproto.repo.listRecords"
DESCRIBE = "com.atproto.repo.describeRepo"
GET_RECORD = "com.atproto.repo.getRecord"


async def reads(env: Env, did: str, rkey: str) -> list[tuple[int, str | None]]:
    answers = [
        await env.get(LIST, {"repo": did, "collection": POST}),
        await env.get(DESCRIBE, {"repo": did}),
        await env.get(GET_RECORD, {"repo": did, "collection": POST, "rkey": rkey}),
    ]
    return [(a.status, a.json.get("error")) for a in answers]


async def test_taken_down_and_deactivated_repositories_are_not_readable(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        bob = await env.create_user("bob")
        made = await env.post(
            "com.atproto.repo.createRecord",
            {"repo": bob.did, "collection": POST, "record": post_record()},
            token=bob.access,
        )
        rkey = made.json["uri"].rsplit("/", 1)[1]
        assert await reads(env, bob.did, rkey) == [(200, None)] * 3
        refused = [(400, "InvalidRequest"), (400, "InvalidRequest"), (400, "RecordNotFound")]

        admin = {"Authorization": basic("admin", env.pds.secrets.admin_password)}
        subject = {"$type": "com.atproto.admin.defs#repoRef", "did": bob.did}
        for applied in (True, False):
            status = await env.post(
                "com.atproto.admin.updateSubjectStatus",
                {"subject": subject, "takedown": {"applied": applied, "ref": "spam"}},
                headers=admin,
            )
            assert status.status == 200, status
            assert await reads(env, bob.did, rkey) == (refused if applied else [(200, None)] * 3)

        assert (
            await env.post("com.atproto.server.deactivateAccount", {}, token=bob.access)
        ).status == 200
        assert await reads(env, bob.did, rkey) == refused
        assert (
            await env.post("com.atproto.server.activateAccount", {}, token=bob.access)
        ).status == 200
        assert await reads(env, bob.did, rkey) == [(200, None)] * 3


async def test_an_app_password_cannot_import_a_repository(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        before = await env.state()
        app = await env.post(
            "com.atproto.server.createAppPassword", {"name": "phone"}, token=env.alice.access
        )
        session = await env.post(
            "com.atproto.server.createSession",
            {"identifier": env.alice.handle, "password": app.json["password"]},
        )
        exported = await env.get("com.atproto.sync.getRepo", {"did": env.alice.did})
        answer = await env.xrpc(
            "POST",
            "com.atproto.repo.importRepo",
            data=exported.raw,
            token=session.json["accessJwt"],
            headers={"Content-Type": "application/vnd.ipld.car"},
        )
        assert_error(answer, 400, "InvalidToken")
        assert await env.state() == before


async def test_failed_sign_ins_from_elsewhere_do_not_lock_the_owner_out(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        env.pds.login_limiter = LoginLimiter(per_account=3)
        wrong = {"identifier": env.alice.handle, "password": "not her password"}
        # The attacker's connections come from another loopback address.
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as elsewhere:
            url = f"{env.url}/xrpc/com.atproto.server.createSession"
            statuses = []
            for _ in range(5):
                async with elsewhere.post(url, json=wrong) as resp:
                    statuses.append(resp.status)
            assert statuses == [401, 401, 401, 429, 429]
        mine = {"identifier": env.alice.handle, "password": "correct horse battery"}
        owner = await env.post("com.atproto.server.createSession", mine)
        assert owner.status == 200, owner


async def upload(env: Env, data: bytes) -> dict[str, object]:
    answer = await env.xrpc(
        "POST",
        "com.atproto.repo.uploadBlob",
        data=data,
        token=env.alice.access,
        headers={"Content-Type": "image/png"},
    )
    assert answer.status == 200, answer
    return answer.json["blob"]


async def test_an_upload_nothing_references_expires(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        kept = await upload(env, b"\x89PNG\r\n\x1a\n kept")
        await env.create(post_record(embed=image_embed(kept)), collection=POST)
        dropped = await upload(env, b"\x89PNG\r\n\x1a\n never posted")
        tmp = env.pds.blobs.tmp
        assert [p for p in tmp.rglob("*") if p.is_file()]
        assert env.pds.sweep_uploads(older_than=3600) == 0
        assert env.pds.sweep_uploads(older_than=0) == 1
        assert not [p for p in tmp.rglob("*") if p.is_file()]
        late = await env.post(
            "com.atproto.repo.createRecord",
            {
                "repo": env.alice.did,
                "collection": POST,
                "record": post_record(embed=image_embed(dropped)),
            },
            token=env.alice.access,
        )
        assert_error(late, 400, "InvalidRequest", "BlobNotFound")
        link = kept["ref"]["$link"]  # type: ignore[index]
        held = await env.get("com.atproto.sync.getBlob", {"did": env.alice.did, "cid": link})
        assert held.status == 200


async def test_uploads_count_against_the_write_limits(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        now = env.pds.rate_limits.clock()
        env.pds.rate_limits.clock = lambda: now  # no refill while it is measured
        hourly = env.pds.rate_limits.writes[0].get(env.alice.did)
        before = hourly.remaining(now)
        for data in (b"one", b"two"):
            answer = await env.xrpc(
                "POST", "com.atproto.repo.uploadBlob", data=data, token=env.alice.access
            )
            assert answer.status == 200, answer
        # Two uploads cost what two creations cost: 3 points each.
        assert before - hourly.remaining(now) == 6


def image_embed(blob: dict[str, object]) -> dict[str, object]:
    return {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": ""}]}


async def test_stores_are_private_to_the_owner(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        await env.create(post_record(), collection=POST)
        data = env.pds.data_dir
        databases = [*data.glob("*.sqlite*"), *(data / "actors").rglob("*.sqlite*")]
        assert databases
        for path in databases:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
