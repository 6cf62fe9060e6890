"""A PDS given its AppViews by URL alone (`--appview URL`, no #DID) and a relay, started as a
user would, each service its own process: it is healthy at once, and learns the DID an AppView
answers as from the AppView's own `/.well-known/did.json` when it first needs it, passing over an
AppView that is down."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from tests.services import free_port, service_process


async def test_appviews_given_by_url_alone(tmp_path: Path) -> None:
    dev = "--dev"
    with (
        service_process("plc", tmp_path / "plc", dev) as (plc, _),
        service_process("relay", tmp_path / "relay", "--plc-url", plc, dev) as (relay, _),
        service_process(
            "appview", tmp_path / "appview", "--plc-url", plc, "--relay", relay, dev
        ) as (appview, _),
    ):
        down = f"http://127.0.0.1:{free_port()}"  # an AppView that is not running
        started = time.monotonic()
        with service_process(
            "pds", tmp_path / "pds", "--hostname", "localhost", "--plc-url", plc,
            "--handle-domain", ".test", dev, "--appview", down, "--appview", appview,
            "--relay", relay,
        ) as (pds, _):  # fmt: skip
            # `service_process` returns once /xrpc/_health answers 200.
            assert time.monotonic() - started < 10
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{pds}/xrpc/com.atproto.server.createAccount",
                    json={"handle": "alice.test", "password": "hunter2hunter2",
                          "email": "alice@example.com"},
                ) as response:  # fmt: skip
                    assert response.status == 200, await response.text()
                    token = (await response.json())["accessJwt"]
                async with http.get(
                    f"{pds}/xrpc/app.bsky.feed.getTimeline",
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    # The AppView took the service token: it was addressed to its own DID.
                    assert response.status == 200, await response.text()
                    assert (await response.json())["feed"] == []
                async with http.get(f"{appview}/.well-known/did.json") as response:
                    appview_did = (await response.json())["id"]
                async with http.get(f"{pds}/xrpc/_upstreams") as response:
                    listed = {
                        u["url"]: u.get("did")
                        for u in (await response.json())["upstreams"]
                        if u["kind"] == "appview"
                    }
                assert listed == {down: None, appview: appview_did}
                async with http.get(f"{pds}/xrpc/_health") as response:
                    assert response.status == 200
