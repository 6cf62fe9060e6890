"""`strata appview`: run an AppView."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from strata.appview.app import create_appview_app
from strata.appview.cache import DEFAULT_MIB
from strata.appview.service import AppView, AppViewConfig
from strata.database import POSTGRES_CONNECTIONS, SQLITE_READERS
from strata.serve import (
    DATABASE_URL,
    PLC_URLS,
    RELAYS,
    SERVE_STALE_FOR,
    WORKERS,
    AppFactory,
    check_workers,
    http_urls,
    options_from,
    public_url,
    relay_urls,
    run_workers,
    service_options,
)

HOSTNAME = click.option(
    "--hostname",
    envvar="STRATA_HOSTNAME",
    default="localhost",
    show_default=True,
    help="Public hostname; the service's DID is did:web of it.",
)


def _fallbacks(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        feed, sep, fallback = value.partition("=")
        if not sep or not feed.startswith("at://") or not fallback.startswith("at://"):
            raise click.BadParameter(f"expected at://FEED=at://FALLBACK, not {value!r}")
        pairs.append((feed, fallback))
    return tuple(pairs)


@click.command("appview")
@service_options(default_port=2585, default_dir="appview")
@HOSTNAME
@PLC_URLS
@RELAYS
@DATABASE_URL
@WORKERS
@click.option(
    "--feed-fallback",
    "feed_fallbacks",
    multiple=True,
    envvar="STRATA_FEED_FALLBACK",
    metavar="at://FEED=at://FALLBACK",
    callback=_fallbacks,
    help="Serve FALLBACK when FEED's generator fails and no recent page of it is remembered.",
)
@SERVE_STALE_FOR
@click.option(
    "--database-pool-size",
    envvar="STRATA_DATABASE_POOL_SIZE",
    type=click.IntRange(min=1),
    help=f"Reader threads on SQLite (default {SQLITE_READERS}, the cores) or connections to "
    f"Postgres (default {POSTGRES_CONNECTIONS}) serving requests; the indexer has its own.",
)
@click.option(
    "--cache-mib",
    envvar="STRATA_CACHE_MIB",
    type=click.IntRange(min=0),
    default=DEFAULT_MIB,
    show_default=True,
    help="Memory for the views every timeline repeats (posts, profiles, counts).",
)
@click.option(
    "--labeler",
    "labelers",
    multiple=True,
    envvar="STRATA_LABELER",
    metavar="DID",
    help="Read this labeler's labels (checked against its key) and show them when a request "
    "names no labelers (repeat the option).",
)
def appview_command(
    hostname: str,
    plc_urls: tuple[str, ...],
    relays: tuple[str, ...],
    database_url: str | None,
    workers: int,
    feed_fallbacks: tuple[tuple[str, str], ...],
    serve_stale_for: float,
    database_pool_size: int | None,
    cache_mib: int,
    labelers: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """Run an AppView: index the network from relays and serve the app.bsky API."""
    options = options_from(kwargs)
    check_workers(workers, database_url)
    config = AppViewConfig(
        plc_urls=http_urls("--plc-url", plc_urls),
        relays=relay_urls(relays),
        public_url=public_url(options, hostname),
        database_url=database_url,
        dev=options.dev,
        feed_fallbacks=feed_fallbacks,
        serve_stale_for=serve_stale_for,
        database_pool_size=database_pool_size,
        cache_mib=cache_mib,
        labelers=labelers,
        workers=workers,
    )
    click.echo(f"AppView DID: {config.did} (give PDSes --appview {config.public_url}#{config.did})")

    def factory(worker: int) -> AppFactory:
        # The first worker indexes; the others serve what it indexes.
        appview = AppView(replace(config, indexing=worker == 0), options.data_dir)
        return lambda: create_appview_app(appview)

    run_workers("appview", options, factory, workers)
