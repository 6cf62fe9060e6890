"""Strata services running in the test's event loop, on loopback with ephemeral ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from strata.plc.app import DIRECTORY_KEY, create_plc_app
from strata.plc.directory import Directory
from strata.plc.store import PlcStore
from strata.serve import listening


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve an application on 127.0.0.1; yields its base URL."""
    async with listening(app, "127.0.0.1", 0) as port:
        yield f"http://127.0.0.1:{port}"


class RunningPlc:
    """A directory served in-process."""

    def __init__(self, url: str, app: web.Application) -> None:
        self.url = url
        self.app = app

    @property
    def directory(self) -> Directory:
        return self.app[DIRECTORY_KEY]


@contextlib.asynccontextmanager
async def running_plc(data_dir: Path, mirror_of: Sequence[str] = ()) -> AsyncIterator[RunningPlc]:
    """A `strata plc` directory (or mirror) with its SQLite file in `data_dir`."""
    store = PlcStore(data_dir / "plc.sqlite")
    app = create_plc_app(store, mirror_of)
    try:
        async with serving(app) as url:
            yield RunningPlc(url, app)
    finally:
        store.close()
