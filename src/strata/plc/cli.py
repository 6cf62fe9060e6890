"""`strata plc`: run a PLC directory, or a mirror of others."""

from __future__ import annotations

from typing import Any

import click
from aiohttp import web

from strata.plc.app import create_plc_app
from strata.plc.store import PlcStore
from strata.serve import (
    DATABASE_URL,
    WORKERS,
    AppFactory,
    check_workers,
    options_from,
    run_workers,
    service_options,
)


@click.command("plc")
@service_options(default_port=2582, default_dir="plc")
@DATABASE_URL
@WORKERS
@click.option(
    "--mirror-of",
    "mirror_of",
    multiple=True,
    metavar="URL",
    envvar="STRATA_MIRROR_OF",
    help="Run as a read-only mirror of these directories, in order of preference "
    "(repeat the option; the environment variable takes space-separated URLs).",
)
def plc_command(
    database_url: str | None, workers: int, mirror_of: tuple[str, ...], **kwargs: Any
) -> None:
    """Run a PLC directory: accepts, verifies and serves did:plc operation logs."""
    options = options_from(kwargs)
    for url in mirror_of:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--mirror-of")
    check_workers(workers, database_url)

    def factory(worker: int) -> AppFactory:
        async def build() -> web.Application:
            store = await PlcStore.open(database_url, options.data_dir / "plc.sqlite")
            # One process copies the mirrored directories; the others see its writes.
            app = create_plc_app(store, mirror_of, mirroring=worker == 0)

            async def close(_app: web.Application) -> None:
                await store.close()

            app.on_cleanup.append(close)
            return app

        return build

    run_workers("plc", options, factory, workers)
