"""What every service answers besides its API: CORS for browser apps, its upstreams, and a
health answer in bounded time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from strata.net.server import HEALTH_TIMEOUT, create_app
from strata.pds.config import AppView
from tests.services import running_pds, running_plc, serving


async def test_browser_apps_on_other_origins_may_call_and_read_staleness(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as running,
        aiohttp.ClientSession() as http,
    ):
        preflight = {
            "Origin": "http://localhost:2580",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        url = f"{running.url}/xrpc/com.atproto.server.createSession"
        async with http.options(url, headers=preflight) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert response.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
        # Errors too: a browser app must be able to read why a call failed.
        async with http.post(url, json={"identifier": "x", "password": "y"}) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            exposed = response.headers["Access-Control-Expose-Headers"]
            for header in ("strata-stale-seconds", "strata-stale-reason", "RateLimit-Remaining"):
                assert header in exposed


async def test_a_pds_lists_its_upstreams_with_their_breaker_states(tmp_path: Path) -> None:
    appviews = (
        AppView("http://127.0.0.1:9", "did:web:first.test"),
        AppView("http://127.0.0.1:10", "did:web:second.test"),
    )
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url, appviews=appviews) as running,
        aiohttp.ClientSession() as http,
        http.get(f"{running.url}/xrpc/_upstreams") as response,
    ):
        assert response.status == 200
        listed = (await response.json())["upstreams"]
    by_kind = {kind: [e for e in listed if e["kind"] == kind] for kind in ("directory", "appview")}
    assert [e["url"] for e in by_kind["directory"]] == [plc.url]
    assert [(e["url"], e["did"], e["state"]) for e in by_kind["appview"]] == [
        ("http://127.0.0.1:9", "did:web:first.test", "closed"),
        ("http://127.0.0.1:10", "did:web:second.test", "closed"),
    ]
    assert [e["inUse"] for e in by_kind["appview"]] == [True, False]


async def test_a_health_check_that_hangs_answers_503_in_time() -> None:
    async def stuck() -> None:
        await asyncio.sleep(30)

    async with serving(create_app("svc", health=stuck)) as url, aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.get(f"{url}/xrpc/_health") as response:
            assert response.status == 503
            assert (await response.json())["error"] == "Service Unavailable"
        assert time.monotonic() - started < HEALTH_TIMEOUT + 1
