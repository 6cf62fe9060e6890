"""A node's configuration file (`strata.toml` in its data directory) and the command line of
each service it runs.

The file is written on first start with the defaults and the options `strata up` was given, and
read on every start after that, so that a node keeps its ports and upstreams. Editing it and
restarting is how an operator changes them.
"""

from __future__ import annotations

import json
import secrets
import sys
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from strata.net.public_fetch import is_loopback_host
from strata.storage import write_private

CONFIG_FILE: Final = "strata.toml"
SECRETS_FILE: Final = "node-secrets.json"
SERVICES: Final = ("plc", "pds", "relay", "labeler", "appview", "feedgen", "web")
"""The services of a node, in the order they start (each needs the ones before it)."""
DEFAULT_PORTS: Final = {
    "web": 2580,
    "plc": 2582,
    "pds": 2583,
    "relay": 2584,
    "appview": 2585,
    "feedgen": 2586,
    "labeler": 2587,
}
FEEDS_ACCOUNT: Final = "feeds"
"""The account (`feeds<handle domain>`) that publishes the node's built-in feeds."""
BUILTIN_FEEDS: Final = ("following", "hot", "lang-en")
LABELER_ACCOUNT: Final = "moderation"
"""The account (`moderation<handle domain>`) the node's labeler labels as."""


class ConfigError(Exception):
    """The configuration file cannot be read; the message says what to change."""


def did_web(hostname: str, port: int) -> str:
    """The did:web of a service on a development host (the port is part of the DID)."""
    return f"did:web:{hostname}%3A{port}"


@dataclass(frozen=True)
class NodeConfig:
    """What a node runs and where: one machine, development mode (plain http on its hostname).

    `plc_urls`, `relays` and `appviews` join a wider network: directories used instead of the
    local one, and relays and AppViews (`URL` or `URL#DID`) used after the local ones."""

    host: str = "127.0.0.1"
    hostname: str = "localhost"
    handle_domain: str = ".test"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    plc_urls: tuple[str, ...] = ()
    relays: tuple[str, ...] = ()
    appviews: tuple[str, ...] = ()
    feeds_publisher: str = ""
    """The DID of the account publishing the built-in feeds, once it exists."""
    labeler_did: str = ""
    """The DID of the account the node's labeler labels as, once it exists."""

    def exposure(self) -> str | None:
        """Why this configuration would expose the node's development services (plain http,
        relaxed identity checks, loopback fetches allowed) beyond this machine; None when it
        stays on loopback."""
        if not is_loopback_host(self.host):
            return f"--host {self.host} is not a loopback address"
        if not is_loopback_host(self.hostname):
            return f"--hostname {self.hostname} is not a name of this machine (localhost)"
        return None

    def url(self, service: str) -> str:
        """Where browsers and the other services reach `service`."""
        return f"http://{self.hostname}:{self.ports[service]}"

    @property
    def runs_plc(self) -> bool:
        """Whether the node runs its own directory (no external ones are configured)."""
        return not self.plc_urls

    @property
    def services(self) -> tuple[str, ...]:
        """The services this node runs, in start order."""
        return tuple(s for s in SERVICES if s != "plc" or self.runs_plc)

    def directory_urls(self) -> tuple[str, ...]:
        return self.plc_urls or (self.url("plc"),)

    def relay_urls(self) -> tuple[str, ...]:
        return (self.url("relay"), *self.relays)

    def appview_did(self) -> str:
        return did_web(self.hostname, self.ports["appview"])

    def feedgen_did(self) -> str:
        return did_web(self.hostname, self.ports["feedgen"])

    def feed_uris(self) -> tuple[str, ...]:
        """The built-in feeds' at:// URIs (none until their publisher exists)."""
        if not self.feeds_publisher:
            return ()
        return tuple(
            f"at://{self.feeds_publisher}/app.bsky.feed.generator/{rkey}" for rkey in BUILTIN_FEEDS
        )

    def with_publisher(self, did: str) -> NodeConfig:
        return replace(self, feeds_publisher=did)

    def with_labeler(self, did: str) -> NodeConfig:
        return replace(self, labeler_did=did)

    def argv(self, service: str, data_dir: Path) -> list[str]:
        """The command line that runs `service` of this node as a process of its own."""
        base = [
            sys.executable,
            "-m",
            "strata",
            service,
            "--host",
            self.host,
            "--port",
            str(self.ports[service]),
            "--data-dir",
            str(data_dir / service),
        ]
        plcs = [arg for url in self.directory_urls() for arg in ("--plc-url", url)]
        relays = [arg for url in self.relay_urls() for arg in ("--relay", url)]
        if service == "plc":
            return [*base, "--dev"]
        if service == "pds":
            appviews = (f"{self.url('appview')}#{self.appview_did()}", *self.appviews)
            return [
                *base,
                "--dev",
                "--hostname",
                self.hostname,
                "--handle-domain",
                self.handle_domain,
                *plcs,
                *relays,
                *(arg for appview in appviews for arg in ("--appview", appview)),
            ]
        if service == "relay":
            return [*base, "--dev", *plcs, "--crawl", self.url("pds")]
        if service == "appview":
            labeler = ["--labeler", self.labeler_did] if self.labeler_did else []
            return [*base, "--dev", "--hostname", self.hostname, *plcs, *relays, *labeler]
        if service == "labeler":
            return [*base, "--dev", *plcs, "--did", self.labeler_did]
        if service == "feedgen":
            publisher = ["--publisher", self.feeds_publisher] if self.feeds_publisher else []
            return [*base, "--dev", "--public-url", self.url("feedgen"), *plcs, *relays, *publisher]
        if service == "web":
            shown = [s for s in self.services if s != "web"]
            return [
                *base,
                "--pds",
                self.url("pds"),
                *(arg for s in shown for arg in ("--service", f"{s}={self.url(s)}")),
                *(arg for uri in self.feed_uris() for arg in ("--feed", uri)),
            ]
        raise ValueError(f"unknown service {service!r}")

    def to_toml(self) -> str:
        """The configuration file's text."""

        def value(v: Any) -> str:
            if isinstance(v, tuple):
                return "[" + ", ".join(json.dumps(item) for item in v) + "]"
            return json.dumps(v)

        lines = [
            "# Strata node configuration, written by `strata up` on first start.",
            "# Edit it and restart `strata up` to change ports or upstreams.",
            "",
            f"host = {value(self.host)}",
            f"hostname = {value(self.hostname)}",
            f"handle_domain = {value(self.handle_domain)}",
            "",
            "# Join a wider network: directories used instead of the local one, and relays",
            "# and AppViews (URL, or URL#DID) used after the local ones, in order of preference.",
            f"plc_urls = {value(self.plc_urls)}",
            f"relays = {value(self.relays)}",
            f"appviews = {value(self.appviews)}",
            "",
            "# The accounts that publish the built-in feeds, and that the labeler labels as",
            "# (created on first start).",
            f"feeds_publisher = {value(self.feeds_publisher)}",
            f"labeler_did = {value(self.labeler_did)}",
            "",
            "[ports]",
            *(f"{name} = {port}" for name, port in self.ports.items()),
            "",
        ]
        return "\n".join(lines)

    @classmethod
    def from_toml(cls, text: str) -> NodeConfig:
        """Parse the configuration file; raises `ConfigError` naming what is wrong."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from exc
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        table = data.get("ports", {})
        if not isinstance(table, dict):
            raise ConfigError("ports must be a table: [ports]")
        ports = dict(DEFAULT_PORTS)
        for name, port in table.items():
            if name not in ports or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(f"[ports] {name} = {port!r}: expected one of {SERVICES}, 1-65535")
            ports[name] = port
        default = cls()
        strings = {
            k: data.get(k, getattr(default, k))
            for k in ("host", "hostname", "handle_domain", "feeds_publisher", "labeler_did")
        }
        lists = {k: data.get(k, []) for k in ("plc_urls", "relays", "appviews")}
        for key, v in {**strings, **lists}.items():
            items = v if isinstance(v, list) else [v]
            if not all(isinstance(item, str) for item in items):
                raise ConfigError(f"{key} must be text")
        domain = strings["handle_domain"]
        return cls(
            host=strings["host"],
            hostname=strings["hostname"],
            handle_domain=domain if domain.startswith(".") else f".{domain}",
            ports=ports,
            plc_urls=tuple(lists["plc_urls"]),
            relays=tuple(lists["relays"]),
            appviews=tuple(lists["appviews"]),
            feeds_publisher=strings["feeds_publisher"],
            labeler_did=strings["labeler_did"],
        )


def load(data_dir: Path) -> NodeConfig | None:
    """The node's configuration, or None before its first start."""
    path = data_dir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return NodeConfig.from_toml(path.read_text())
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def save(data_dir: Path, config: NodeConfig) -> Path:
    """Write the configuration file durably; returns its path."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CONFIG_FILE
    write_private(path, config.to_toml())
    return path


@dataclass(frozen=True)
class NodeSecrets:
    """Secrets of the node itself (each service keeps its own in its data directory)."""

    feeds_password: str
    labeler_password: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> NodeSecrets:
        """The secrets in `data_dir`, created there with mode 0600 when missing (and any
        missing from an older file added)."""
        path = data_dir / SECRETS_FILE
        known = json.loads(path.read_text()) if path.exists() else {}
        wanted = {f.name: known.get(f.name) or secrets.token_urlsafe(24) for f in fields(cls)}
        if wanted != known:
            data_dir.mkdir(parents=True, exist_ok=True)
            write_private(path, json.dumps(wanted))
        return cls(**wanted)
