"""The relay's configuration, host names as the relay keys them, and its operator secret."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from strata.net.firehose import WINDOW_BYTES
from strata.net.public_fetch import is_public
from strata.storage import write_private

SECRETS_FILE: Final = "secrets.json"
_HOSTNAME: Final = re.compile(
    r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*"
)
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


@dataclass(frozen=True)
class RelayConfig:
    """What a relay follows and how strictly."""

    plc_urls: tuple[str, ...]
    crawl: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    siblings: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()
    lenient: tuple[str, ...] = ()
    dev: bool = False
    replay_hours: float = 72.0
    default_account_limit: int = 100
    new_hosts_per_day: int = 50
    host_connections: int = 5_000
    """Hosts' firehoses connected at once; hosts beyond wait for a connection."""
    firehose_window_bytes: int = WINDOW_BYTES
    """Bytes of recent firehose frames kept in memory for consumers that are behind."""
    database_url: str | None = None
    """Postgres for the relay's tables, instead of SQLite in its data directory."""


class InvalidHost(ValueError):
    """A host name or URL the relay cannot subscribe to."""


@dataclass(frozen=True)
class HostAddress:
    """A host as the relay keys it: `name` (lower case, no scheme; with a port only when one
    is needed) and whether it speaks plain http."""

    name: str
    no_ssl: bool

    @property
    def url(self) -> str:
        return f"{'http' if self.no_ssl else 'https'}://{self.name}"

    @classmethod
    def parse(cls, value: str, dev: bool) -> HostAddress:
        """A host from `requestCrawl`'s hostname or a URL. Outside dev mode only https on the
        default port, and no loopback names. In dev mode the loopback names are one host, so
        that `127.0.0.1:2583` and `localhost:2583` are the same PDS."""
        value = value.strip()
        no_ssl = value.lower().startswith("http://")
        parts = urlsplit(value if "://" in value else f"https://{value}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidHost(f"not a host name or http(s) URL: {value!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise InvalidHost(f"a host is a name, not a URL with a path: {value!r}")
        host = parts.hostname.lower()
        if not _HOSTNAME.fullmatch(host) and host not in LOOPBACK_NAMES:
            raise InvalidHost(f"not a host name: {host!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise InvalidHost(f"invalid port in {value!r}") from exc
        loopback = host in LOOPBACK_NAMES
        if not dev and (no_ssl or loopback or port not in (None, 443) or _private(host)):
            raise InvalidHost(
                f"{value!r}: plain http, ports, loopback and private addresses need --dev "
                "on the relay"
            )
        if loopback:
            host = "localhost"
            # As the reference relay reads it: a bare `localhost:port` is a dev PDS on http.
            no_ssl = no_ssl or "://" not in value
        default_port = 80 if no_ssl else 443
        name = host if port in (None, default_port) else f"{host}:{port}"
        return cls(name, no_ssl)


def _private(host: str) -> bool:
    """Whether `host` is an address literal that is not public (names are checked on the
    addresses they resolve to, when connecting)."""
    try:
        return not is_public(host)
    except ValueError:
        return False


def load_admin_password(data_dir: Path) -> str:
    """The operator password in `data_dir`, created there (mode 0600) on first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    path = data_dir / SECRETS_FILE
    if path.exists():
        return str(json.loads(path.read_text())["admin_password"])
    password = secrets.token_urlsafe(18)
    write_private(path, json.dumps({"admin_password": password}))
    return password
