"""The PDS's proxy, attacked as a hostile account would: a DID document whose service endpoint
is the PDS's own network, and an AppView that answers without end. The PDS runs in production
mode (not `--dev`); every server is on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from strata.core.crypto import K256Keypair
from strata.pds.api.appview import MAX_PROXIED_ANSWER
from strata.pds.config import AppView
from tests.plcops import genesis, update
from tests.services import running_pds, running_plc, serving

PROFILE = "app.bsky.actor.getProfile"


def secret_service(hits: list[str]) -> web.Application:
    """What must stay unreachable: an internal service on loopback."""

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"secret": "internal data"})

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("http://127.0.0.1:1/secret")

    app = web.Application()
    app.router.add_route("*", "/redirect/xrpc/{nsid}", redirect)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def register_service_did(plc_url: str, endpoint: str) -> str:
    """A DID whose document names `endpoint` as its `#evil` service and its `#bsky_notif`
    (push notification) service."""
    key = K256Keypair.generate()
    did, op = genesis([key], key)
    op_services = {
        "evil": {"type": "EvilService", "endpoint": endpoint},
        "bsky_notif": {"type": "BskyNotificationService", "endpoint": endpoint},
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{plc_url}/{did}", json=op) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post(
            f"{plc_url}/{did}", json=update(op, key, services=op_services)
        ) as resp:
            assert resp.status == 200, await resp.text()
    return did


async def alice(http: aiohttp.ClientSession, pds: str) -> dict[str, str]:
    body = {"handle": "alice.test", "email": "alice@example.com", "password": "a password"}
    async with http.post(f"{pds}/xrpc/com.atproto.server.createAccount", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['accessJwt']}"}


@contextlib.asynccontextmanager
async def secret() -> AsyncIterator[tuple[str, list[str]]]:
    """The internal service's URL, and the paths it was asked for."""
    hits: list[str] = []
    async with serving(secret_service(hits)) as url:
        yield url, hits


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}",
        "http://2130706433:{port}",
        "http://127.0.0.2:{port}",
        "http://[::1]:{port}",
        "http://0.0.0.0:{port}",
        "http://10.0.0.1:{port}",
        "http://169.254.169.254",
    ],
)
async def test_a_did_document_cannot_point_the_proxy_inwards(tmp_path: Path, endpoint: str) -> None:
    async with secret() as (url, hits), running_plc(tmp_path / "plc") as plc:
        port = url.rsplit(":", 1)[1]
        did = await register_service_did(plc.url, endpoint.format(port=port))
        async with (
            running_pds(tmp_path / "pds", plc.url, dev=False) as pds,
            aiohttp.ClientSession() as http,
        ):
            auth = await alice(http, pds.url)
            headers = {**auth, "atproto-proxy": f"{did}#evil"}
            for method, nsid in [("GET", PROFILE), ("GET", "com.example.secret.read")]:
                async with http.request(
                    method, f"{pds.url}/xrpc/{nsid}", params={"actor": "x"}, headers=headers
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 400, body
                    assert body["error"] == "InvalidRequest"
                    assert "internal data" not in str(body)
            # A push registration goes to the `#bsky_notif` service of the DID it names.
            push = {"serviceDid": did, "token": "t", "platform": "web", "appId": "x"}
            async with http.post(
                f"{pds.url}/xrpc/app.bsky.notification.registerPush", json=push, headers=auth
            ) as resp:
                assert resp.status == 400, await resp.text()
        assert hits == []


async def test_an_endpoint_is_reached_at_its_origin_without_redirects(tmp_path: Path) -> None:
    # In development loopback is allowed, but the endpoint's path is still dropped, and a
    # redirect is passed back rather than followed.
    async with secret() as (url, hits), running_plc(tmp_path / "plc") as plc:
        did = await register_service_did(plc.url, f"{url}/redirect")
        async with (
            running_pds(tmp_path / "pds", plc.url) as pds,
            aiohttp.ClientSession() as http,
        ):
            auth = await alice(http, pds.url)
            headers = {**auth, "atproto-proxy": f"{did}#evil"}
            async with http.get(
                f"{pds.url}/xrpc/{PROFILE}", params={"actor": "x"}, headers=headers
            ) as resp:
                assert resp.status == 200
        assert hits == [f"/xrpc/{PROFILE}"]


def endless_appview(sent: list[int]) -> web.Application:
    """An AppView whose answer never ends (a megabyte at a time)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * (1 << 20)
        try:
            for _ in range(400):
                await response.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    app = web.Application()
    app.router.add_route("*", "/xrpc/{nsid}", handle)
    return app


async def test_an_endless_answer_is_cut_at_the_cap(tmp_path: Path) -> None:
    sent = [0]
    async with running_plc(tmp_path / "plc") as plc, serving(endless_appview(sent)) as appview:
        appviews = (AppView(appview, "did:web:appview.test"),)
        async with (
            running_pds(tmp_path / "pds", plc.url, appviews=appviews) as pds,
            aiohttp.ClientSession() as http,
        ):
            auth = await alice(http, pds.url)
            async with http.get(
                f"{pds.url}/xrpc/{PROFILE}", params={"actor": "x"}, headers=auth
            ) as resp:
                body = await resp.json()
                assert resp.status == 502, body
                assert body["error"] == "UpstreamFailure"
            await asyncio.sleep(0.5)
    # The PDS stopped reading a little past its cap, far short of the 400 MB on offer.
    assert sent[0] < MAX_PROXIED_ANSWER + (32 << 20)
