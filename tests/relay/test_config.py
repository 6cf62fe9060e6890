"""Host names as the relay keys them."""

from __future__ import annotations

import pytest

from strata.relay.config import HostAddress, InvalidHost


@pytest.mark.parametrize(
    ("value", "dev", "name", "no_ssl"),
    [
        ("pds.example.com", False, "pds.example.com", False),
        ("https://PDS.example.com/", False, "pds.example.com", False),
        ("https://pds.example.com:443", False, "pds.example.com", False),
        ("http://127.0.0.1:2583", True, "localhost:2583", True),
        ("localhost:2583", True, "localhost:2583", True),
        ("http://pds.test:80", True, "pds.test", True),
        ("https://pds.test:8443", True, "pds.test:8443", False),
    ],
)
def test_hosts_are_keyed_by_name(value: str, dev: bool, name: str, no_ssl: bool) -> None:
    assert HostAddress.parse(value, dev) == HostAddress(name, no_ssl)


@pytest.mark.parametrize(
    ("value", "dev"),
    [
        ("http://pds.example.com", False),
        ("localhost:2583", False),
        ("pds.example.com:8443", False),
        ("pds.example.com/xrpc", True),
        ("https://pds.example.com?x=1", True),
        ("no host", True),
        ("ftp://pds.example.com", True),
        ("", True),
        ("https://user@pds.example.com", True),
        ("pds.example.com:99999", True),
    ],
)
def test_what_is_not_a_host(value: str, dev: bool) -> None:
    with pytest.raises(InvalidHost):
        HostAddress.parse(value, dev)
