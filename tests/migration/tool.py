"""Running `strata account ...` as a real process, and what the tests check after a move."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.appview.network import indexed
from tests.appview.test_api import create
from tests.migration.network import MigrationNetwork
from tests.relay.xrpc import PdsUser
from tests.services import eventually

PASSWORD = "hunter2-pw"


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str


async def strata_account(*args: str, timeout: float = 60.0) -> Run:
    """`strata account ARGS` with the test accounts' password, stdin closed (not a terminal),
    killed after `timeout` seconds."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strata", "account", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "STRATA_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(errors="replace"))


async def login(http: aiohttp.ClientSession, pds: str, identifier: str) -> PdsUser:
    body = {"identifier": identifier, "password": PASSWORD}
    async with http.post(f"{pds}/xrpc/com.atproto.server.createSession", json=body) as r:
        answer = await r.json()
        assert r.status == 200, answer
    return PdsUser(http, pds, answer["did"], answer["accessJwt"])


async def did_document(http: aiohttp.ClientSession, plc_url: str, did: str) -> dict[str, Any]:
    async with http.get(f"{plc_url}/{did}") as r:
        assert r.status == 200
        document: dict[str, Any] = await r.json()
        return document


async def repo_status(http: aiohttp.ClientSession, pds: str, did: str) -> dict[str, Any]:
    async with http.get(f"{pds}/xrpc/com.atproto.sync.getRepoStatus", params={"did": did}) as r:
        answer: dict[str, Any] = await r.json()
        return answer


async def timeline_texts(reader: PdsUser) -> list[str]:
    async with reader.http.get(
        f"{reader.pds}/xrpc/app.bsky.feed.getTimeline",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {reader.token}"},
    ) as r:
        body = await r.json()
        assert r.status == 200, body
    return [item["post"]["record"]["text"] for item in body["feed"]]


async def sees(reader: PdsUser, texts: set[str], what: str) -> None:
    """Wait until every one of `texts` is in `reader`'s timeline."""

    async def check() -> bool:
        return texts <= set(await timeline_texts(reader))

    await eventually(check, what=what)


async def check_moved(
    http: aiohttp.ClientSession,
    plc_url: str,
    mover: PdsUser,
    new_public_url: str,
    old_pds: str | None,
    follower: PdsUser,
    earlier_posts: set[str],
) -> None:
    """After a move: the DID document names the new PDS, the old PDS (unless it is gone)
    reports the account deactivated, the follower still sees the earlier posts and sees a
    new one."""
    document = await did_document(http, plc_url, mover.did)
    assert document["service"][0]["serviceEndpoint"] == new_public_url
    if old_pds is not None:
        assert (await repo_status(http, old_pds, mover.did)).get("status") == "deactivated"
    assert (await repo_status(http, mover.pds, mover.did)).get("active") is True
    await mover.post("posted from my new home")
    await sees(follower, earlier_posts | {"posted from my new home"}, "the new post followed")


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


async def alice_and_follower(network: MigrationNetwork) -> tuple[PdsUser, PdsUser, set[str]]:
    """alice on the old PDS with posts, an image, a profile and preferences; bob (on the new
    PDS, or on the old one when the new one is not Strata's) following her and seeing her
    posts through the AppView."""
    bob_home = network.old if network.new.kind == "official" else network.new
    alice = await PdsUser.create(network.http, network.old.url, "alice.test")
    bob = await PdsUser.create(network.http, bob_home.url, "bob.test")
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


def migrate_args(
    network: MigrationNetwork, state: Path, old: str | None = None, new: str | None = None
) -> list[str]:
    """`strata account migrate` of alice from the network's old PDS to its new one (or to
    and from `old` and `new`, proxies in front of them)."""
    return ["migrate", "--from", old or network.old.url, "--account", "alice.test",
            "--to", new or network.new.url, "--plc", network.plc_url,
            "--state", str(state)]  # fmt: skip


async def migrate_with_code(network: MigrationNetwork, did: str, args: list[str]) -> str:
    """Run the move until the old PDS asks for its emailed code, then again with the code;
    returns the output of both runs."""
    asks = await strata_account(*args)
    assert asks.returncode == 1 and "--plc-token" in asks.output, asks.output
    done = await strata_account(*args, "--plc-token", network.old.plc_code(did))
    assert done.returncode == 0, done.output
    return asks.output + done.output


async def last_rotation_keys(http: aiohttp.ClientSession, plc_url: str, did: str) -> list[str]:
    """The rotation keys of the DID's current operation in the directory."""
    async with http.get(f"{plc_url}/{did}/log/last") as response:
        keys: list[str] = (await response.json())["rotationKeys"]
        return keys


async def strata_account_at_terminal(
    *args: str, answer: Callable[[], str], prompt: str, timeout: float = 60.0
) -> Run:
    """`strata account ARGS` with a terminal as stdin: when `prompt` appears in its output,
    `answer()` is typed in."""
    controller, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strata", "account", *args,
        stdin=terminal,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "STRATA_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    os.close(terminal)
    output = b""
    try:
        async with asyncio.timeout(timeout):
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(4096):
                output += chunk
                if prompt.encode() in output and b"\n" not in output.rsplit(prompt.encode(), 1)[1]:
                    os.write(controller, answer().encode() + b"\n")
            await proc.wait()
    finally:
        os.close(controller)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(proc.returncode, output.decode(errors="replace"))
