"""The `strata` command: one entry point for every service and tool."""

from __future__ import annotations

import click

from strata import __version__
from strata.appview.cli import appview_command
from strata.feedgen.cli import feedgen_command
from strata.pds.cli import pds_command
from strata.plc.cli import plc_command
from strata.relay.cli import relay_command
from strata.tools.account_cli import account
from strata.tools.hosts_cli import hosts
from strata.tools.repo_cli import repo
from strata.tools.resolve_cli import resolve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="strata")
def main() -> None:
    """Strata: a self-hostable AT Protocol stack with no single upstream at any hop."""


@main.command()
def up() -> None:
    """Run the whole network locally (directory, PDS, relay, AppView, feed generator)."""
    click.echo(
        "strata up arrives with the browser client. Until then, start each service on its own "
        "as the README shows: strata plc, strata pds, strata relay, strata appview, "
        "strata feedgen (each with --help)."
    )


main.add_command(repo)
main.add_command(plc_command)
main.add_command(pds_command)
main.add_command(relay_command)
main.add_command(feedgen_command)
main.add_command(appview_command)
main.add_command(account)
main.add_command(hosts)
main.add_command(resolve)
