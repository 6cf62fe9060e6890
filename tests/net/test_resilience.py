"""The resilience layer on real loopback servers: upstream pools, admission control, the
PDS's rate limits, and an AppView that says how stale its index is."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from strata.net.server import ADMISSION_KEY, create_app
from strata.net.upstream import UpstreamPool, UpstreamUnavailable
from strata.pds.ratelimit import Buckets, Limit
from strata.resilience import Deadline
from tests.services import free_port, running_appview, running_pds, running_plc, serving


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        if response.status != 200:
            raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
        return await response.text()


def _upstream(
    name: str, calls: list[str], delay: float = 0.0, status: int = 200
) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        calls.append(name)
        await asyncio.sleep(delay)
        return web.Response(text=name, status=status)

    app = web.Application()
    app.router.add_get("/", handle)
    app.router.add_post("/", handle)
    return app


async def test_pool_fails_over_hedges_and_writes_go_to_one_endpoint() -> None:
    calls: list[str] = []
    dead = f"http://127.0.0.1:{free_port()}"
    async with (
        serving(_upstream("slow", calls, delay=2.0)) as slow,
        serving(_upstream("fast", calls)) as fast,
        aiohttp.ClientSession() as http,
    ):
        pool = UpstreamPool("test", [dead, slow, fast], timeout=3.0, hedge_after=0.1)

        async def get(url: str) -> str:
            return await _get(http, url + "/")

        started = time.monotonic()
        assert await pool.call(get) == "fast"  # dead fails over, slow is outrun by a hedge
        assert time.monotonic() - started < 1.5
        assert pool.states()[dead] == "closed"  # one failure is not enough to open it

        # A write is tried on one endpoint only, never hedged or retried.
        calls.clear()

        async def post(url: str) -> str:
            async with http.post(url + "/") as response:
                return await response.text()

        with pytest.raises(UpstreamUnavailable) as raised:
            await pool.call(post, idempotent=False)
        assert calls == [] and isinstance(raised.value.causes[0], aiohttp.ClientError)

        # The failing endpoint's health score sends it behind the healthy ones.
        assert pool.endpoints[0].health.degraded(1.0, time.monotonic())
        calls.clear()
        assert await pool.call(get) == "fast" and calls == ["slow", "fast"]

        # Failures in a row open its breaker: later calls fail at once, without trying it.
        only_dead = UpstreamPool("dead", [dead], retries=0)
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable):
                await only_dead.call(get)
        assert only_dead.states()[dead] == "open"
        with pytest.raises(UpstreamUnavailable) as raised:
            await only_dead.call(get)
        assert raised.value.causes == [] and "circuit open" in str(raised.value)

        # A half-open endpoint that is not called (a healthy one answered first) keeps its
        # probe for a later call, instead of staying switched off for good.
        pair = UpstreamPool("pair", [fast, dead], reset_after=0.0, retries=0)
        pair.endpoints[1].breaker.record_failure(0.0)
        pair.endpoints[1].breaker.failures = 10
        pair.endpoints[1].breaker.record_failure(time.monotonic())
        assert await pair.call(get) == "fast"
        assert pair.endpoints[1].breaker.available(time.monotonic())

        # The deadline bounds every attempt, whatever the pool's own timeout.
        only_slow = UpstreamPool("slow", [slow], timeout=10.0, retries=0)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as raised:
            await only_slow.call(get, deadline=Deadline.after(time.monotonic(), 0.3))
        assert time.monotonic() - started < 1.0
        assert isinstance(raised.value.causes[0], TimeoutError)


async def test_retry_budget_bounds_extra_calls_to_a_failing_upstream() -> None:
    calls: list[str] = []
    async with (
        serving(_upstream("a", calls, status=503)) as a,
        serving(_upstream("b", calls, status=503)) as b,
        aiohttp.ClientSession() as http,
    ):
        # A breaker that never opens, to see the budget alone.
        pool = UpstreamPool("overloaded", [a, b], failure_threshold=10_000, reset_after=0.0)
        pool.endpoints[0].breaker.min_calls = pool.endpoints[1].breaker.min_calls = 10_000

        async def get(url: str) -> str:
            return await _get(http, url + "/")

        for _ in range(100):
            with pytest.raises(UpstreamUnavailable):
                await pool.call(get)
        # 100 first attempts; failovers and retries only from the budget (10 + 20 % of calls).
        assert 100 <= len(calls) <= 100 + 10 + 20 + 1


async def test_admission_sheds_reads_with_503_and_keeps_writes_and_health() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    app = create_app("test")
    app[ADMISSION_KEY].policy.capacity = 5
    app.router.add_get("/xrpc/test.read", slow)
    app.router.add_post("/xrpc/test.write", slow)
    async with serving(app) as url, aiohttp.ClientSession() as http:
        reads = [asyncio.create_task(http.get(f"{url}/xrpc/test.read")) for _ in range(6)]
        await asyncio.sleep(0.5)
        done = [t for t in reads if t.done()]
        assert len(done) == 2  # 80 % of 5 reads admitted, the rest refused at once
        for task in done:
            response = task.result()
            assert response.status == 503 and response.headers["Retry-After"] == "1"
            assert (await response.json())["error"] == "NotEnoughResources"
        write = asyncio.create_task(http.post(f"{url}/xrpc/test.write"))
        async with http.get(f"{url}/xrpc/_health") as response:
            assert response.status == 200
        async with http.get(f"{url}/metrics") as response:
            assert 'strata_requests_shed_total{lane="read",service="test"}' in await response.text()
        release.set()
        assert (await write).status == 200
        for task in reads:
            (await task).release()


async def test_pds_rate_limits_send_the_reference_headers(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as running,
        aiohttp.ClientSession() as http,
    ):
        limits = running.pds.rate_limits
        body = {"handle": "alice.test", "email": "a@example.test", "password": "pw"}
        async with http.post(
            f"{running.url}/xrpc/com.atproto.server.createAccount", json=body
        ) as response:
            assert response.headers["RateLimit-Policy"] == "3000;w=300"
            assert int(response.headers["RateLimit-Remaining"]) < 3000
            assert int(response.headers["RateLimit-Reset"]) >= int(time.time())
            session = await response.json()
        auth = {"Authorization": f"Bearer {session['accessJwt']}"}

        # Writes cost points per account: 3 for a create.
        limits.writes = [Buckets(Limit("repo-write-hour", 7, 3600))]
        record = {
            "repo": session["did"],
            "collection": "app.bsky.feed.post",
            "record": {"text": "hi", "createdAt": "2026-11-21T00:00:00.000Z"},
        }
        url = f"{running.url}/xrpc/com.atproto.repo.createRecord"
        statuses = []
        for _ in range(3):
            async with http.post(url, json=record, headers=auth) as response:
                statuses.append(response.status)
                last = response
                error = await response.json()
        assert statuses == [200, 200, 429]
        assert error["error"] == "RateLimitExceeded"
        assert last.headers["RateLimit-Policy"] == "7;w=3600"
        assert last.headers["RateLimit-Remaining"] == "1"
        count = f"{running.url}/xrpc/com.atproto.repo.listRecords"
        params = {"repo": session["did"], "collection": "app.bsky.feed.post"}
        async with http.get(count, params=params) as response:
            assert len((await response.json())["records"]) == 2  # the refused write changed nothing

        # Per address; getRepo and health are not counted; a bypassed address is not limited.
        limits.addresses = Buckets(Limit("global-ip", 2, 300))
        for _ in range(3):
            async with http.get(f"{running.url}/xrpc/_health") as response:
                assert response.status == 200
        describe = f"{running.url}/xrpc/com.atproto.server.describeServer"
        statuses = []
        for _ in range(3):
            async with http.get(describe) as response:
                statuses.append(response.status)
        assert statuses == [200, 200, 429]
        limits.bypass_ips = frozenset({"127.0.0.1"})
        async with http.get(describe) as response:
            assert response.status == 200 and "RateLimit-Limit" not in response.headers


async def test_appview_marks_answers_stale_when_every_relay_is_gone(tmp_path: Path) -> None:
    dead_relays = (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_appview(tmp_path / "appview", plc.url, dead_relays) as running,
        aiohttp.ClientSession() as http,
    ):
        url = f"{running.url}/xrpc/app.bsky.actor.searchActors"
        async with http.get(url, params={"q": "a"}) as response:
            assert response.status == 200 and "strata-stale-seconds" not in response.headers
        subscriber = running.appview.subscriber
        assert subscriber is not None and not subscriber.connected
        subscriber.disconnected_at -= 100  # as if the relays had been gone for 100 s
        async with http.get(url, params={"q": "a"}) as response:
            assert response.status == 200  # still answers from its index
            assert int(response.headers["strata-stale-seconds"]) >= 100
        async with http.get(f"{running.url}/metrics") as response:
            assert "strata_firehose_disconnected_seconds" in await response.text()
