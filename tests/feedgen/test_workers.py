"""`strata feedgen --workers 2` over one Postgres database: one worker follows the firehose,
both serve the same feeds, `/metrics` counts the requests of both, a dead worker is replaced
and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from strata.feedgen.cli import feedgen_command
from tests.feedgen.services import create_account
from tests.postgres import PostgresCluster
from tests.services import (
    eventually,
    free_port,
    get_ok,
    metric,
    running_pds,
    running_plc,
    running_relay,
    start_strata,
    stop_workers,
    worker_pids,
    worker_replaced,
)

pytestmark = pytest.mark.async_timeout(120)

PUBLISHER = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
FEED = f"at://{PUBLISHER}/app.bsky.feed.generator/lang-en"


async def test_two_workers_serve_one_index(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(tmp_path / "relay", plc.url, crawl=(pds.url,)) as relay,
        aiohttp.ClientSession() as http,
    ):
        proc = await start_strata(
            "feedgen", tmp_path / "feedgen", port, "--database-url",
            postgres_cluster.new_database(), "--workers", "2", "--relay", relay.url,
            "--plc-url", plc.url, "--dev", "--publisher", PUBLISHER,
        )  # fmt: skip
        try:
            workers = worker_pids(proc.pid)
            assert len(workers) == 2
            alice = await create_account(http, pds.url, "alice.test")
            first = await alice.say("hello", langs=["en"])

            async def skeleton(session: aiohttp.ClientSession = http) -> list[Any]:
                body = await get_ok(session, f"{url}/xrpc/app.bsky.feed.getFeedSkeleton", feed=FEED)
                return [item["post"] for item in body["feed"]]

            await eventually(skeleton, 20.0, "the post is in the feed")
            ok = 'strata_feedgen_skeleton_requests_total{feed="lang-en",outcome="ok"}'
            before = await metric(http, url, ok)
            fresh = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(connector=fresh) as h:
                answering = {(await get_ok(h, f"{url}/xrpc/_health"))["worker"] for _ in range(40)}
                assert answering == {0, 1}
                answers = [await skeleton(h) for _ in range(30)]
                assert all(answer == [first["uri"]] for answer in answers)
                # Requests spread over both workers, and /metrics counts them all.
                assert {await metric(h, url, ok) for _ in range(10)} == {before + 30}

            consumers = 'strata_firehose_consumers{service="relay"}'
            assert await metric(http, relay.url, consumers) == 1.0

            os.kill(workers[0], signal.SIGKILL)

            await worker_replaced(proc.pid, workers[0], 15.0)
            second = await alice.say("again", langs=["en"])
            await eventually(
                skeleton, 20.0, "indexing goes on", lambda posts: second["uri"] in posts
            )
            assert await metric(http, relay.url, consumers) == 1.0

            await stop_workers(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def test_workers_need_postgres(tmp_path: Path) -> None:
    args = ["--workers", "2", "--data-dir", str(tmp_path), "--relay", "http://127.0.0.1:9"]
    result = CliRunner().invoke(feedgen_command, args)
    assert result.exit_code == 2
    assert "--workers 2 needs --database-url" in result.output
