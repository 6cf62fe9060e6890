"""A network for migration tests on loopback: a Strata directory, relay and AppView, an old and
a new PDS (each a Strata PDS in the test's loop, a Strata PDS process that can be killed, or
the official `@atproto/pds`), and the relay following both PDSes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp

from strata.pds.config import AppView
from strata.pds.mail import outbox_code
from tests.interop.peers import official_pds_module, require_peers
from tests.services import (
    RunningAppView,
    RunningRelay,
    eventually,
    free_port,
    running_appview,
    running_pds,
    running_plc,
    running_relay,
    start_strata,
)


def strata_outbox_code(pds_data_dir: Path, did: str) -> str:
    """The PLC confirmation code a Strata PDS last mailed to `did`."""
    return outbox_code(pds_data_dir, did)


Kind = Literal["strata", "strata-process", "official"]


@dataclass
class Home:
    """A PDS of the network."""

    kind: Kind
    url: str  # where the tool and the tests reach it
    public_url: str  # what the DID documents it writes name
    data_dir: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    argv: tuple[str, ...] = ()  # a `strata-process` home's options, to restart it

    def plc_code(self, did: str) -> str:
        """The PLC confirmation code this PDS last sent to `did`'s email."""
        if self.kind == "official":
            with contextlib.closing(sqlite3.connect(self.data_dir / "account.sqlite")) as db:
                row = db.execute(
                    "SELECT token FROM email_token WHERE did = ? AND purpose = 'plc_operation'",
                    (did,),
                ).fetchone()
            assert row is not None, "no code in the official PDS's database"
            return str(row[0])
        return strata_outbox_code(self.data_dir, did)

    async def kill(self) -> None:
        """SIGKILL the PDS's process (a `strata-process` home)."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def restart(self) -> None:
        """Start a killed `strata-process` home again, on its port and data."""
        port = int(self.url.rsplit(":", 1)[1])
        self.process = await start_strata("pds", self.data_dir, port, *self.argv)


@dataclass
class MigrationNetwork:
    plc_url: str
    relay: RunningRelay
    appview: RunningAppView
    old: Home
    new: Home
    http: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def _home(kind: Kind, data_dir: Path, plc_url: str, appview: AppView) -> AsyncIterator[Home]:
    if kind == "strata":
        async with running_pds(data_dir, plc_url, appviews=(appview,)) as pds:
            yield Home(kind, pds.url, pds.pds.config.public_url, data_dir)
    elif kind == "strata-process":
        port = free_port()
        argv = ("--dev", "--hostname", "localhost", "--plc-url", plc_url,
                "--appview", f"{appview.url}#{appview.did}")  # fmt: skip
        home = Home(kind, f"http://127.0.0.1:{port}", f"http://localhost:{port}", data_dir,
                    await start_strata("pds", data_dir, port, *argv), argv)  # fmt: skip
        try:
            yield home
        finally:
            assert home.process is not None
            if home.process.returncode is None:
                home.process.terminate()
                await asyncio.wait_for(home.process.wait(), 10)
    else:
        require_peers()
        async with official_pds_module.official_pds(
            plc_url, data_dir, port=free_port(), appview=(appview.url, appview.did)
        ) as pds:
            # It names itself http://localhost:PORT; the relay must know it by that name.
            yield Home(kind, pds.public_url, pds.public_url, data_dir)


@contextlib.asynccontextmanager
async def migration_network(
    tmp_path: Path, old: Kind = "strata", new: Kind = "strata"
) -> AsyncIterator[MigrationNetwork]:
    """The network, with the relay following both PDSes and the AppView reading the relay."""
    appview_port = free_port()
    appview = AppView(f"http://localhost:{appview_port}", f"did:web:localhost%3A{appview_port}")
    async with (
        running_plc(tmp_path / "plc") as plc,
        _home(old, tmp_path / "old", plc.url, appview) as old_home,
        _home(new, tmp_path / "new", plc.url, appview) as new_home,
        running_relay(tmp_path / "relay", plc.url, crawl=(old_home.url, new_home.url)) as relay,
        running_appview(tmp_path / "appview", plc.url, (relay.url,), appview_port) as running,
        aiohttp.ClientSession() as http,
    ):

        async def connected() -> bool:
            streams = relay.relay.streams.values()
            subscriber = running.appview.subscriber
            return (
                len(streams) == 2
                and all(s.connected for s in streams)
                and subscriber is not None
                and subscriber.connected
            )

        await eventually(connected, what="the relay follows both PDSes, the AppView the relay")
        yield MigrationNetwork(plc.url, relay, running, old_home, new_home, http)
