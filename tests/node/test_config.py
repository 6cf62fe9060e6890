"""The node's configuration file and the command lines of its services."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from strata.node.cli import up_command
from strata.node.config import DEFAULT_PORTS, ConfigError, NodeConfig, load, save
from tests.services import free_port


def test_a_saved_configuration_reads_back(tmp_path: Path) -> None:
    config = NodeConfig(
        ports={
            "web": 3580,
            "plc": 3582,
            "pds": 3583,
            "relay": 3584,
            "appview": 3585,
            "feedgen": 3586,
            "labeler": 3587,
        },
        relays=("https://relay.example.com",),
        appviews=("https://api.example.com#did:web:api.example.com",),
        feeds_publisher="did:plc:abc",
        labeler_did="did:plc:def",
    )
    path = save(tmp_path, config)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load(tmp_path) == config
    assert load(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("host = ", "not valid TOML"),
        ("colour = 'blue'", "unknown settings: colour"),
        ("[ports]\npds = 99999", "[ports] pds"),
        ("[ports]\nmail = 25", "[ports] mail"),
        ("relays = [1, 2]", "relays must be text"),
    ],
)
def test_a_broken_file_says_what_is_wrong(tmp_path: Path, text: str, complaint: str) -> None:
    (tmp_path / "strata.toml").write_text(text)
    with pytest.raises(ConfigError, match=complaint.replace("[", r"\[")):
        load(tmp_path)


def test_each_service_is_told_where_the_others_are(tmp_path: Path) -> None:
    config = NodeConfig(relays=("https://relay.example.com",), feeds_publisher="did:plc:abc")
    pds = config.argv("pds", tmp_path)
    assert pds[pds.index("--data-dir") + 1] == str(tmp_path / "pds")
    assert "http://localhost:2585#did:web:localhost%3A2585" in pds
    assert [pds[i + 1] for i, a in enumerate(pds) if a == "--relay"] == [
        "http://localhost:2584",
        "https://relay.example.com",
    ]
    feedgen = config.argv("feedgen", tmp_path)
    assert feedgen[feedgen.index("--publisher") + 1] == "did:plc:abc"
    web = config.argv("web", tmp_path)
    assert "at://did:plc:abc/app.bsky.feed.generator/hot" in web
    assert "appview=http://localhost:2585" in web


def test_external_directories_replace_the_local_one(tmp_path: Path) -> None:
    config = NodeConfig(plc_urls=("https://plc.directory",))
    assert "plc" not in config.services
    appview = config.argv("appview", tmp_path)
    assert [appview[i + 1] for i, a in enumerate(appview) if a == "--plc-url"] == [
        "https://plc.directory"
    ]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--host", "0.0.0.0"], "--host 0.0.0.0 is not a loopback address"),
        (["--hostname", "node.example.com"], "--hostname node.example.com is not a name"),
    ],
)
def test_up_refuses_to_expose_a_development_network(
    tmp_path: Path, args: list[str], complaint: str
) -> None:
    result = CliRunner().invoke(up_command, [*args, "--data-dir", str(tmp_path / "node")])
    assert result.exit_code == 2
    assert complaint in result.output
    assert "without --dev" in result.output
    assert not (tmp_path / "node" / "strata.toml").exists()


def test_up_stops_before_starting_anything_when_a_port_is_taken(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    ports = {name: free_port() for name in DEFAULT_PORTS}
    save(data_dir, NodeConfig(ports=ports))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["feedgen"]))
        holder.listen()
        result = CliRunner().invoke(up_command, ["--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert f"a port is taken: feedgen ({ports['feedgen']})" in result.output
    assert "change [ports] in" in result.output
    assert not (data_dir / "logs").exists()


def test_up_refuses_two_services_on_one_port(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    ports = {name: free_port() for name in DEFAULT_PORTS}
    ports["feedgen"] = ports["pds"]
    save(data_dir, NodeConfig(ports=ports))
    result = CliRunner().invoke(up_command, ["--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert f"feedgen ({ports['pds']}, also pds's)" in result.output
