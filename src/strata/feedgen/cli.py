"""`strata feedgen`: run a feed generator, and `strata feedgen publish` its feed records."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from strata.core.errors import CoreError
from strata.core.syntax import validate_did, validate_language
from strata.feedgen.algorithm import Algorithm, AlgorithmError, load_algorithm
from strata.feedgen.app import create_feedgen_app
from strata.feedgen.config import FeedgenConfig
from strata.feedgen.feeds import DEFAULT_LANGUAGES, builtin_algorithms
from strata.feedgen.record import generator_record
from strata.feedgen.service import GENERATOR, Feedgen
from strata.identity.service_did import InvalidPublicUrl, service_did
from strata.serve import (
    DATABASE_URL,
    PLC_URLS,
    RELAYS,
    WORKERS,
    AppFactory,
    check_workers,
    http_urls,
    options_from,
    relay_urls,
    run_workers,
    service_options,
)
from strata.tools.account_cli import PDS_OPTION, call


def _did(option: str, value: str) -> str:
    try:
        return validate_did(value)
    except CoreError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


@click.group("feedgen", invoke_without_command=True)
@service_options(default_port=2586, default_dir="feedgen")
@PLC_URLS
@RELAYS
@click.option(
    "--public-url",
    envvar="STRATA_PUBLIC_URL",
    metavar="URL",
    help="Where AppViews reach this feed generator; its did:web names this URL's host. "
    "[default with --dev: http://localhost:<port>]",
)
@DATABASE_URL
@WORKERS
@click.option(
    "--publisher",
    envvar="STRATA_PUBLISHER",
    metavar="DID",
    help="The account whose repository holds the feeds' app.bsky.feed.generator records.",
)
@click.option(
    "--language",
    "languages",
    multiple=True,
    envvar="STRATA_LANGUAGE",
    metavar="CODE",
    help="Serve a lang-<CODE> feed besides lang-en (repeat the option).",
)
@click.option(
    "--algorithm",
    "algorithm_specs",
    multiple=True,
    envvar="STRATA_ALGORITHM",
    metavar="MODULE:ATTR",
    help="Serve a feed written in Python (see strata.feedgen.algorithm; repeat the option).",
)
@click.pass_context
def feedgen_command(
    ctx: click.Context,
    /,
    plc_urls: tuple[str, ...],
    relays: tuple[str, ...],
    public_url: str | None,
    database_url: str | None,
    workers: int,
    publisher: str | None,
    languages: tuple[str, ...],
    algorithm_specs: tuple[str, ...],
    **kwargs: Any,
) -> None:
    """Run a feed generator: index the firehose and serve hot, lang-<code>, following and your
    own feeds."""
    if ctx.invoked_subcommand is not None:
        return
    options = options_from(kwargs)
    if not relays:
        raise click.UsageError("give at least one --relay to read the firehose from")
    check_workers(workers, database_url)
    if public_url is None:
        if not options.dev:
            raise click.UsageError("--public-url is required (outside --dev)")
        public_url = f"http://localhost:{options.port}"
    try:
        service_did(public_url, options.dev)
    except InvalidPublicUrl as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from exc
    for language in languages:
        try:
            validate_language(language)
        except CoreError as exc:
            raise click.BadParameter(str(exc), param_hint="--language") from exc
    algorithms: list[Algorithm] = builtin_algorithms((*DEFAULT_LANGUAGES, *languages))
    for spec in algorithm_specs:
        try:
            algorithms.append(load_algorithm(spec))
        except AlgorithmError as exc:
            raise click.BadParameter(str(exc), param_hint="--algorithm") from exc
    config = FeedgenConfig(
        public_url=public_url.rstrip("/"),
        relays=relay_urls(relays),
        plc_urls=http_urls("--plc-url", plc_urls),
        database_url=database_url or None,
        publisher=_did("--publisher", publisher) if publisher else None,
        dev=options.dev,
    )
    try:
        first = Feedgen(config, options.data_dir, algorithms)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--algorithm") from exc

    def factory(worker: int) -> AppFactory:
        # The first worker follows the firehose; the others serve what it indexes.
        serving = replace(config, indexing=False)
        feedgen = first if worker == 0 else Feedgen(serving, options.data_dir, algorithms)
        return lambda: create_feedgen_app(feedgen)

    run_workers("feedgen", options, factory, workers)


@feedgen_command.command("publish")
@PDS_OPTION
@click.option(
    "--identifier",
    envvar="STRATA_IDENTIFIER",
    required=True,
    help="Handle or DID of the publishing account.",
)
@click.option("--password", envvar="STRATA_PASSWORD", prompt=True, hide_input=True)
@click.option(
    "--rkey", envvar="STRATA_RKEY", required=True, help="The feed's record key, e.g. hot."
)
@click.option(
    "--feedgen-did",
    envvar="STRATA_FEEDGEN_DID",
    required=True,
    metavar="DID",
    help="The feed generator serving the feed (its did:web).",
)
@click.option("--display-name", envvar="STRATA_DISPLAY_NAME", default=None)
@click.option("--description", envvar="STRATA_DESCRIPTION", default=None)
def publish(
    pds: str,
    identifier: str,
    password: str,
    rkey: str,
    feedgen_did: str,
    display_name: str | None,
    description: str | None,
) -> None:
    """Publish a feed: write its app.bsky.feed.generator record.

    The record goes to the publishing account's repository, where apps find it; it names the
    feed generator that serves the feed. Prints the feed's at:// URI."""
    try:
        record = generator_record(
            rkey, _did("--feedgen-did", feedgen_did), display_name, description
        )
    except CoreError as exc:
        raise click.ClickException(f"the feed record would be invalid: {exc}") from exc
    session = call(
        "POST",
        pds,
        "com.atproto.server.createSession",
        body={"identifier": identifier, "password": password},
    )
    answer = call(
        "POST",
        pds,
        "com.atproto.repo.putRecord",
        body={"repo": session["did"], "collection": GENERATOR, "rkey": rkey, "record": record},
        headers={"Authorization": f"Bearer {session['accessJwt']}"},
    )
    click.echo(answer["uri"])
