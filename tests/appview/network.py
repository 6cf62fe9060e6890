"""A small network on loopback for AppView tests: a directory, two PDSes proxying to one AppView,
and a relay between them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from strata.pds.config import AppView
from tests.relay.xrpc import PdsUser
from tests.services import (
    RunningAppView,
    RunningPds,
    RunningRelay,
    eventually,
    free_port,
    running_appview,
    running_pds,
    running_plc,
    running_relay,
)


@dataclass
class Network:
    plc_url: str
    pdses: tuple[RunningPds, RunningPds]
    relay: RunningRelay
    appview: RunningAppView
    http: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def appview_network(
    tmp_path: Path,
    database_url: str | None = None,
    feedgen_port: int | None = None,
    **pds_options: Any,
) -> AsyncIterator[Network]:
    """The network, with the relay following both PDSes (configured with `pds_options`
    besides the AppView) and the AppView reading the relay."""
    appview_port = free_port()
    appview = AppView(f"http://127.0.0.1:{appview_port}", f"did:web:localhost%3A{appview_port}")
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds1", plc.url, appviews=(appview,), **pds_options) as pds1,
        running_pds(tmp_path / "pds2", plc.url, appviews=(appview,), **pds_options) as pds2,
        running_relay(tmp_path / "relay", plc.url, crawl=(pds1.url, pds2.url)) as relay,
        running_appview(
            tmp_path / "appview", plc.url, (relay.url,), appview_port, database_url
        ) as running,
        aiohttp.ClientSession() as http,
    ):

        async def connected() -> bool:
            streams = relay.relay.streams.values()
            return len(streams) == 2 and all(s.connected for s in streams)

        await eventually(connected, what="the relay follows both PDSes")
        await eventually(
            lambda: _true(running.appview.subscriber is not None
                          and running.appview.subscriber.connected),
            what="the AppView reads the relay",
        )  # fmt: skip
        yield Network(plc.url, (pds1, pds2), relay, running, http)


async def _true(value: bool) -> bool:
    return value


class WithAppView(Protocol):
    appview: RunningAppView


async def indexed(network: WithAppView, user: PdsUser) -> None:
    """Wait until the AppView knows the account and its handle."""

    async def check() -> bool:
        assert network.appview.appview.db is not None
        row = await network.appview.appview.db.fetchrow(
            "SELECT handle FROM actor WHERE did = ?", user.did
        )
        return row is not None and row[0] is not None and row[0] != "handle.invalid"

    await eventually(check, what=f"{user.did} indexed")
