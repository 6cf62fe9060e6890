"""`strata feedgen` and `strata feedgen publish`: options, the did:web, loading algorithms, and
publishing a feed record to a real PDS."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from strata.cli import main
from strata.feedgen.algorithm import AlgorithmError, load_algorithm
from strata.identity.service_did import InvalidPublicUrl, service_did
from tests.feedgen.services import create_account
from tests.services import free_port, running_pds, running_plc, service_process


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("url", "dev", "did"),
    [
        ("https://feeds.example.com", False, "did:web:feeds.example.com"),
        ("https://Feeds.Example.com/", False, "did:web:feeds.example.com"),
        ("http://localhost:2586", True, "did:web:localhost%3A2586"),
        ("http://127.0.0.1:2586", True, "did:web:127.0.0.1%3A2586"),
        ("https://feeds.example.com:8443", True, "did:web:feeds.example.com%3A8443"),
    ],
)
def test_the_did_web_names_the_public_host(url: str, dev: bool, did: str) -> None:
    assert service_did(url, dev) == did


@pytest.mark.parametrize(
    ("url", "dev"),
    [
        ("http://feeds.example.com", False),  # did:web is fetched over https
        ("http://feeds.example.com", True),
        ("https://feeds.example.com:8443", False),  # ports only in dev mode
        ("http://localhost:2586", False),
        ("https://feeds.example.com/path", False),
        ("ftp://feeds.example.com", False),
        ("https://[::1]:2586", True),
        ("feeds.example.com", False),
    ],
)
def test_public_urls_that_no_did_web_can_name(url: str, dev: bool) -> None:
    with pytest.raises(InvalidPublicUrl):
        service_did(url, dev)


def test_loading_algorithms() -> None:
    assert load_algorithm("tests.feedgen.custom:MyLikes").rkey == "my-likes"
    for spec, problem in (
        ("tests.feedgen.custom", "module:attribute"),
        ("tests.feedgen.nonexistent:X", "cannot import"),
        ("tests.feedgen.custom:Missing", "no attribute"),
        ("tests.feedgen.custom:NOT_AN_ALGORITHM", "rkey must be a string"),
        ("tests.feedgen.custom:ViewerRequired", "rkey must be a string"),
    ):
        with pytest.raises(AlgorithmError, match=problem):
            load_algorithm(spec)


def test_command_line_mistakes_are_usage_errors(tmp_path: Path) -> None:
    base = ("feedgen", "--data-dir", str(tmp_path))
    for args, problem in (
        ((), "--relay"),
        (("--relay", "http://127.0.0.1:1"), "--public-url is required"),
        (("--relay", "http://127.0.0.1:1", "--public-url", "http://feeds.test"), "https"),
        (("--dev", "--relay", "nope"), "not an http(s) URL"),
        (("--dev", "--relay", "ws://r.test", "--language", "english!"), "--language"),
        (("--dev", "--relay", "ws://r.test", "--publisher", "alice"), "--publisher"),
        (("--dev", "--relay", "ws://r.test", "--algorithm", "nope"), "module:attribute"),
        (("--dev", "--relay", "ws://r.test", "--database-url", "mysql://x"), "postgresql://"),
        (
            ("--dev", "--relay", "ws://r.test", "--algorithm", "tests.feedgen.custom:MyLikes") * 2,
            "two feeds have the record key 'my-likes'",
        ),
    ):
        code, output = run(*base, *args)
        assert code == 2, output
        assert problem in output, output


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_service_runs_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
    monkeypatch.setenv("STRATA_PUBLISHER", publisher)
    port = free_port()
    args = ["--dev", "--relay", "http://127.0.0.1:9", "--language", "pt"]
    args += ["--algorithm", "tests.feedgen.custom:MyLikes"]
    with service_process("feedgen", tmp_path / "feedgen", *args, port=port) as (url, _):
        did = f"did:web:localhost%3A{port}"
        described = _get_json(f"{url}/xrpc/app.bsky.feed.describeFeedGenerator")
        assert described == {
            "did": did,
            "feeds": [
                {"uri": f"at://{publisher}/app.bsky.feed.generator/{rkey}"}
                for rkey in ("hot", "following", "lang-en", "lang-pt", "my-likes")
            ],
        }
        document = _get_json(f"{url}/.well-known/did.json")
        assert document["id"] == did
        assert document["service"] == [
            {
                "id": "#bsky_fg",
                "type": "BskyFeedGenerator",
                "serviceEndpoint": f"http://localhost:{port}",
            }
        ]
    assert (tmp_path / "feedgen" / "feedgen.sqlite").exists()


async def get_record(http: aiohttp.ClientSession, pds: str, uri: str) -> Any:
    _, _, repo, collection, rkey = uri.split("/")
    params = {"repo": repo, "collection": collection, "rkey": rkey}
    async with http.get(f"{pds}/xrpc/com.atproto.repo.getRecord", params=params) as r:
        assert r.status == 200
        return await r.json()


async def test_publish_writes_the_feed_record(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        alice = await create_account(http, pds.url, "alice.test")
        common = ("feedgen", "publish", "--pds", pds.url, "--identifier", "alice.test")
        feedgen = ("--feedgen-did", "did:web:feeds.example.com")

        # The command makes its own event loop, so it runs in a thread of its own.
        code, output = await asyncio.to_thread(
            run, *common, "--password", "hunter2-pw", "--rkey", "hot", *feedgen
        )
        assert code == 0, output
        uri = output.strip()
        assert uri == f"at://{alice.did}/app.bsky.feed.generator/hot"
        record = (await get_record(http, pds.url, uri))["value"]
        assert record["did"] == "did:web:feeds.example.com"
        assert record["displayName"] == "What's Hot"
        assert record["description"].startswith("Popular posts")

        code, output = await asyncio.to_thread(
            run, *common, "--password", "hunter2-pw", "--rkey", "lang-pt", *feedgen,
            "--display-name", "Português", "--description", "",
        )  # fmt: skip
        assert code == 0, output
        record = (await get_record(http, pds.url, output.strip()))["value"]
        assert record["displayName"] == "Português" and "description" not in record

        code, output = await asyncio.to_thread(
            run, *common, "--password", "wrong", "--rkey", "hot", *feedgen
        )
        assert code == 1 and "AuthenticationRequired" in output
        code, output = await asyncio.to_thread(
            run, *common, "--password", "hunter2-pw", "--rkey", "no spaces", *feedgen
        )
        assert code == 1 and "would be invalid" in output
        code, output = await asyncio.to_thread(
            run, *common, "--password", "hunter2-pw", "--rkey", "hot", "--feedgen-did", "x"
        )
        assert code == 2 and "--feedgen-did" in output
