"""Running `strata account ...` as a real process, and what the tests check after a move."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

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


def strata_outbox_code(pds_data_dir: Path, did: str) -> str:
    """The PLC confirmation code a Strata PDS last mailed to `did`."""
    mails = sorted((pds_data_dir / "mail" / "outbox").glob(f"*plc_operation-{did.replace(':', '_')}*"))
    found = re.search(r"code: (\S+)", mails[-1].read_text())
    assert found, mails[-1]
    return found.group(1)


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
    async with http.get(
        f"{pds}/xrpc/com.atproto.sync.getRepoStatus", params={"did": did}
    ) as r:
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
    old_pds: str,
    follower: PdsUser,
    earlier_posts: set[str],
) -> None:
    """After a move: the DID document names the new PDS, the old PDS reports the account
    deactivated, the follower still sees the earlier posts and sees a new one."""
    document = await did_document(http, plc_url, mover.did)
    assert document["service"][0]["serviceEndpoint"] == new_public_url
    assert (await repo_status(http, old_pds, mover.did)).get("status") == "deactivated"
    assert (await repo_status(http, mover.pds, mover.did)).get("active") is True
    await mover.post("posted from my new home")
    await sees(follower, earlier_posts | {"posted from my new home"}, "the new post followed")
