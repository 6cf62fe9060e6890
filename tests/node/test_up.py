"""`strata up` as a person runs it: every service up, the built-in feeds published, `strata
status` and `strata account` against it, and Ctrl-C stopping everything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from strata.node.config import BUILTIN_FEEDS, load
from tests.node.running import Node, running_node, xrpc


def strata(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strata", *args], capture_output=True, text=True, timeout=60
    )


def test_every_service_answers_and_the_feeds_are_published(node: Node) -> None:
    for service in node.config.services:
        assert xrpc(node.url(service), "_health")["version"]
    config = load(node.data_dir)
    assert config is not None and config.feeds_publisher.startswith("did:plc:")
    assert (node.data_dir / "node-secrets.json").stat().st_mode & 0o777 == 0o600
    described = xrpc(node.url("feedgen"), "app.bsky.feed.describeFeedGenerator")
    served = {feed["uri"].rsplit("/", 1)[1] for feed in described["feeds"]}
    assert set(BUILTIN_FEEDS) <= served
    generators = xrpc(
        node.url("appview"), "app.bsky.feed.getFeedGenerators", feeds=list(config.feed_uris())
    )
    assert {g["displayName"] for g in generators["feeds"]} >= {"What's Hot", "Follows (feed)"}
    lines = "\n".join(node.output)
    for service in node.config.services:
        assert f"{service:8} {node.url(service)}  ready" in lines


def test_status_reports_every_service(node: Node) -> None:
    result = strata("status", "--data-dir", str(node.data_dir))
    assert result.returncode == 0, result.stderr
    for service in node.config.services:
        line = next(line for line in result.stdout.splitlines() if line.startswith(service))
        assert " ok " in line
    appview = next(line for line in result.stdout.splitlines() if line.startswith("appview"))
    assert "firehose lag" in appview and "breakers" in appview


def test_status_without_a_node_says_what_to_do(tmp_path: Path) -> None:
    result = strata("status", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "start one with strata up" in result.stderr


def test_account_tools(node: Node) -> None:
    pds = node.url("pds")
    created = strata(
        "account", "create", "--pds", pds, "--handle", "frank.test", "--password", "first-pass"
    )
    assert created.returncode == 0, created.stderr
    did = created.stdout.split()[-1]
    listed = strata("account", "list", "--pds", pds)
    assert f"{did}  active" in listed.stdout
    changed = strata(
        "account", "password", "--pds", pds, "--handle", "frank.test",
        "--password", "second-pass", "--data-dir", str(node.data_dir / "pds"),
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    body = json.dumps({"identifier": "frank.test", "password": "second-pass"}).encode()
    request = urllib.request.Request(
        f"{pds}/xrpc/com.atproto.server.createSession",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["did"] == did
    wrong = strata(
        "account", "password", "--pds", pds, "--handle", "frank.test",
        "--password", "x", "--admin-password", "not-the-admin-password",
    )  # fmt: skip
    assert wrong.returncode != 0 and "401" in wrong.stderr


def test_ctrl_c_stops_every_service(tmp_path: Path) -> None:
    with running_node(tmp_path, demo=False) as node:
        assert len(node.children()) == len(node.config.services)
        node.process.send_signal(signal.SIGINT)
        assert node.process.wait(timeout=60) == 0
        assert node.children() == []
        assert node.output[-1] == "stopped"
