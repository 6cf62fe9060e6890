"""`strata plc`: run a PLC directory, or a mirror of others."""

from __future__ import annotations

from typing import Any

import click

from strata.plc.app import create_plc_app
from strata.plc.store import PlcStore
from strata.serve import options_from, run_service, service_options


@click.command("plc")
@service_options(default_port=2582, default_dir="plc")
@click.option(
    "--mirror-of",
    "mirror_of",
    multiple=True,
    metavar="URL",
    envvar="STRATA_MIRROR_OF",
    help="Run as a read-only mirror of these directories, in order of preference "
    "(repeat the option; the environment variable takes space-separated URLs).",
)
def plc_command(mirror_of: tuple[str, ...], **kwargs: Any) -> None:
    """Run a PLC directory: accepts, verifies and serves did:plc operation logs."""
    options = options_from(kwargs)
    for url in mirror_of:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--mirror-of")
    store = PlcStore(options.data_dir / "plc.sqlite")
    try:
        run_service("plc", options, lambda: create_plc_app(store, mirror_of))
    finally:
        store.close()
