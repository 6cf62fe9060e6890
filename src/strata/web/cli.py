"""`strata web`: serve the browser client."""

from __future__ import annotations

from typing import Any

import click

from strata.serve import http_urls, options_from, run_service, service_options
from strata.web.app import WebConfig, create_web_app


def _services(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    services = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=URL, not {value!r}")
        services[name] = http_urls("--service", (url,))[0]
    return services


@click.command("web")
@service_options(default_port=2580, default_dir="web")
@click.option(
    "--pds",
    envvar="STRATA_PDS",
    default="http://localhost:2583",
    show_default=True,
    metavar="URL",
    help="The PDS the sign-in page offers (people on other PDSes enter theirs).",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    envvar="STRATA_SERVICE",
    metavar="NAME=URL",
    callback=_services,
    help="A service the operator dashboard shows (repeat the option).",
)
@click.option(
    "--feed",
    "feeds",
    multiple=True,
    envvar="STRATA_FEED",
    metavar="at://...",
    help="A feed the client offers besides Following (repeat the option).",
)
def web_command(pds: str, services: dict[str, str], feeds: tuple[str, ...], **kwargs: Any) -> None:
    """Serve the browser client: sign in, timelines, feeds, posting, profiles, threads,
    notifications, your providers and the operator dashboard."""
    options = options_from(kwargs)
    config = WebConfig(http_urls("--pds", (pds,))[0], services, feeds)
    run_service("web", options, lambda: create_web_app(config))
