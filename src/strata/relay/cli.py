"""`strata relay`: run a relay."""

from __future__ import annotations

from typing import Any

import click

from strata.relay.app import create_relay_app
from strata.relay.config import HostAddress, InvalidHost, RelayConfig
from strata.relay.service import Relay
from strata.serve import (
    DATABASE_URL,
    FIREHOSE_WINDOW,
    PLC_URLS,
    http_urls,
    options_from,
    run_service,
    service_options,
)


def _urls(option: str, values: tuple[str, ...], dev: bool) -> tuple[str, ...]:
    for value in values:
        try:
            HostAddress.parse(value, dev)
        except InvalidHost as exc:
            raise click.BadParameter(str(exc), param_hint=option) from exc
    return values


@click.command("relay")
@service_options(default_port=2584, default_dir="relay")
@DATABASE_URL
@PLC_URLS
@click.option(
    "--crawl",
    multiple=True,
    envvar="STRATA_CRAWL",
    metavar="URL",
    help="PDS hosts to follow from the start (repeat the option).",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    envvar="STRATA_UPSTREAM",
    metavar="URL",
    help="Other relays to follow too; events are deduplicated (repeat the option).",
)
@click.option(
    "--sibling",
    "siblings",
    multiple=True,
    envvar="STRATA_SIBLING",
    metavar="URL",
    help="Relays to forward requestCrawl to (repeat the option).",
)
@click.option(
    "--trusted",
    multiple=True,
    envvar="STRATA_TRUSTED",
    metavar="HOST",
    help="Hosts (or *.domain) with the high event-rate tier (repeat the option).",
)
@click.option(
    "--lenient",
    multiple=True,
    envvar="STRATA_LENIENT",
    metavar="HOST",
    help="Hosts older than sync 1.1: strict checks only warn (repeat the option).",
)
@click.option(
    "--replay-hours",
    envvar="STRATA_REPLAY_HOURS",
    type=click.FloatRange(min=0.0, min_open=True),
    default=72.0,
    show_default=True,
    help="How long events stay available for cursor replay.",
)
@click.option(
    "--default-account-limit",
    envvar="STRATA_DEFAULT_ACCOUNT_LIMIT",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Active accounts a new host may have before more are throttled.",
)
@click.option(
    "--host-connections",
    envvar="STRATA_HOST_CONNECTIONS",
    type=click.IntRange(min=1),
    default=5_000,
    show_default=True,
    help="Hosts' firehoses connected at once; hosts beyond wait for a connection. Identity "
    "lookups and repository fetches have pools of their own.",
)
@FIREHOSE_WINDOW
def relay_command(
    database_url: str | None,
    plc_urls: tuple[str, ...],
    crawl: tuple[str, ...],
    upstreams: tuple[str, ...],
    siblings: tuple[str, ...],
    trusted: tuple[str, ...],
    lenient: tuple[str, ...],
    replay_hours: float,
    default_account_limit: int,
    host_connections: int,
    firehose_window_mib: int,
    **kwargs: Any,
) -> None:
    """Run a relay: follow PDSes and other relays, verify, and serve one firehose."""
    options = options_from(kwargs)
    config = RelayConfig(
        plc_urls=http_urls("--plc-url", plc_urls),
        crawl=_urls("--crawl", crawl, options.dev),
        upstreams=_urls("--upstream", upstreams, options.dev),
        siblings=http_urls("--sibling", siblings),
        trusted=trusted,
        lenient=lenient,
        dev=options.dev,
        replay_hours=replay_hours,
        default_account_limit=default_account_limit,
        host_connections=host_connections,
        firehose_window_bytes=firehose_window_mib << 20,
        database_url=database_url,
    )
    relay = Relay(config, options.data_dir)
    run_service("relay", options, lambda: create_relay_app(relay))
