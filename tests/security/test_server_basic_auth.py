"""Operator endpoints refuse any wrong basic-auth password with 401, including one with
characters beyond ASCII or bytes that are not UTF-8 (which once gave a 500), and change
nothing."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp

from tests.services import running_plc, running_relay


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def test_a_password_beyond_ascii_is_refused_with_401(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_relay(tmp_path / "relay", plc.url) as relay,
        aiohttp.ClientSession() as http,
    ):
        block = f"{relay.url}/admin/pds/block"
        for raw in ("admin:pässwörd".encode(), "admin:密码".encode(), b"admin:\xff\xfe"):
            async with http.post(block, json={"host": "pds.example"}, headers=basic(raw)) as r:
                assert r.status == 401, raw
                assert (await r.json())["error"] == "AuthenticationRequired"
        password = relay.relay.admin_password
        listing = f"{relay.url}/admin/pds/list"
        async with http.get(listing, headers=basic(f"admin:{password}".encode())) as r:
            assert r.status == 200
            assert await r.json() == {"hosts": []}
