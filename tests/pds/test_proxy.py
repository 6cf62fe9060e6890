"""`app.bsky.*` calls proxied to AppViews with a service token; reads fail over."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
from aiohttp import web

from strata.core.crypto import parse_multikey
from strata.core.jwt import parse_jwt, verify_service_jwt
from strata.pds.config import AppView
from tests.services import free_port, running_pds, running_plc, serving

PROFILE = "app.bsky.actor.getProfile"


def appview(name: str, plc_url: str, seen: list[str]) -> web.Application:
    """An AppView stand-in that checks the caller's service token against its DID document."""

    async def handle(request: web.Request) -> web.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        issuer = parse_jwt(token).payload["iss"]
        async with aiohttp.ClientSession() as http, http.get(f"{plc_url}/{issuer}") as resp:
            doc = await resp.json()
        key = parse_multikey(doc["verificationMethod"][0]["publicKeyMultibase"])
        nsid = request.match_info["nsid"]
        verify_service_jwt(token, key, f"did:web:{name}", nsid, time.time())
        seen.append(name)
        return web.json_response({"servedBy": name, "actor": request.query.get("actor")})

    app = web.Application()
    app.router.add_route("*", "/xrpc/{nsid}", handle)
    return app


async def _alice(http: aiohttp.ClientSession, pds: str) -> dict[str, str]:
    """A new account's authorization header."""
    body = {"handle": "alice.test", "email": "a@example.test", "password": "pw"}
    async with http.post(f"{pds}/xrpc/com.atproto.server.createAccount", json=body) as resp:
        return {"Authorization": f"Bearer {(await resp.json())['accessJwt']}"}


async def test_reads_fail_over_and_the_proxy_header_picks_the_service(tmp_path: Path) -> None:
    seen: list[str] = []
    down = f"http://127.0.0.1:{free_port()}"
    async with (
        running_plc(tmp_path / "plc") as plc,
        serving(appview("second.test", plc.url, seen)) as second,
        serving(appview("third.test", plc.url, seen)) as third,
    ):
        appviews = (
            AppView(down, "did:web:first.test"),
            AppView(second, "did:web:second.test"),
            AppView(third, "did:web:third.test"),
        )
        async with (
            running_pds(tmp_path / "pds", plc.url, appviews=appviews) as pds,
            aiohttp.ClientSession() as http,
        ):
            auth = await _alice(http, pds.url)
            url = f"{pds.url}/xrpc/{PROFILE}"

            # The first AppView is down: the read goes to the next one, with a token for it.
            async with http.get(url, params={"actor": "bob.test"}, headers=auth) as resp:
                assert resp.status == 200
                assert await resp.json() == {"servedBy": "second.test", "actor": "bob.test"}
            # (a slow answer may also have been hedged to the third)
            assert seen[0] == "second.test"
            seen.clear()

            # atproto-proxy names a configured AppView: only that one is asked.
            headers = {**auth, "atproto-proxy": "did:web:third.test#bsky_appview"}
            async with http.get(url, params={"actor": "bob.test"}, headers=headers) as resp:
                assert (await resp.json())["servedBy"] == "third.test"
            assert seen == ["third.test"]

            # Without a token nothing is proxied.
            async with http.get(url, params={"actor": "bob.test"}) as resp:
                assert resp.status == 401


async def test_busy_appviews_give_503_and_remembered_answers_come_back_stale(
    tmp_path: Path,
) -> None:
    state = {"status": 200}

    async def handle(request: web.Request) -> web.Response:
        if state["status"] == 503:
            return web.json_response(
                {"error": "NotEnoughResources", "message": "busy"},
                status=503,
                headers={"Retry-After": "7"},
            )
        return web.json_response({"feed": [], "n": request.query.get("limit")})

    app = web.Application()
    app.router.add_route("*", "/xrpc/{nsid}", handle)
    async with (
        running_plc(tmp_path / "plc") as plc,
        serving(app) as first,
        serving(app) as second,
    ):
        appviews = (AppView(first, "did:web:first.test"), AppView(second, "did:web:second.test"))
        async with (
            running_pds(tmp_path / "pds", plc.url, appviews=appviews) as pds,
            aiohttp.ClientSession() as http,
        ):
            auth = await _alice(http, pds.url)
            url = f"{pds.url}/xrpc/app.bsky.feed.getTimeline"
            async with http.get(url, params={"limit": "5"}, headers=auth) as resp:
                assert resp.status == 200 and "strata-stale-seconds" not in resp.headers

            state["status"] = 503
            async with http.get(url, params={"limit": "5"}, headers=auth) as resp:
                assert resp.status == 200 and resp.headers["strata-stale-seconds"] == "0"
                assert (await resp.json())["n"] == "5"
            async with http.get(url, params={"limit": "6"}, headers=auth) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"] == "7"
                assert (await resp.json())["error"] == "NotEnoughResources"
