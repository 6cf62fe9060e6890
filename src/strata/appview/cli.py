"""`strata appview`: run an AppView."""

from __future__ import annotations

from typing import Any

import click

from strata.appview.app import create_appview_app
from strata.appview.service import AppView, AppViewConfig
from strata.serve import (
    PLC_URLS,
    http_urls,
    options_from,
    public_url,
    run_service,
    service_options,
)

RELAYS = click.option(
    "--relay",
    "relays",
    multiple=True,
    envvar="STRATA_RELAY",
    metavar="URL",
    help="Relays to read the network from, in order of preference (repeat the option).",
)
DATABASE_URL = click.option(
    "--database-url",
    envvar="STRATA_DATABASE_URL",
    metavar="postgresql://...",
    help="Keep the index in Postgres instead of SQLite in --data-dir.",
)
HOSTNAME = click.option(
    "--hostname",
    envvar="STRATA_HOSTNAME",
    default="localhost",
    show_default=True,
    help="Public hostname; the service's DID is did:web of it.",
)


@click.command("appview")
@service_options(default_port=2585, default_dir="appview")
@HOSTNAME
@PLC_URLS
@RELAYS
@DATABASE_URL
def appview_command(
    hostname: str,
    plc_urls: tuple[str, ...],
    relays: tuple[str, ...],
    database_url: str | None,
    **kwargs: Any,
) -> None:
    """Run an AppView: index the network from relays and serve the app.bsky API."""
    options = options_from(kwargs)
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        raise click.BadParameter("must be a postgresql:// URL", param_hint="--database-url")
    config = AppViewConfig(
        plc_urls=http_urls("--plc-url", plc_urls),
        relays=http_urls("--relay", relays),
        public_url=public_url(options, hostname),
        database_url=database_url,
        dev=options.dev,
    )
    appview = AppView(config, options.data_dir)
    click.echo(f"AppView DID: {config.did} (give PDSes --appview {config.public_url}#{config.did})")
    run_service("appview", options, lambda: create_appview_app(appview))
