"""The `strata` command: one entry point for every service and tool."""

from __future__ import annotations

import click

from strata import __version__
from strata.appview.cli import appview_command
from strata.feedgen.cli import feedgen_command
from strata.labeler.cli import labeler_command
from strata.migration.cli import add_rotation_key_command, export, import_backup, migrate
from strata.node.cli import status_command, up_command
from strata.pds.cli import pds_command
from strata.plc.cli import plc_command
from strata.relay.cli import relay_command
from strata.tools.account_cli import account
from strata.tools.hosts_cli import hosts
from strata.tools.repo_cli import repo
from strata.tools.resolve_cli import resolve
from strata.web.cli import web_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="strata")
def main() -> None:
    """Strata: a self-hostable AT Protocol stack with no single upstream at any hop."""


main.add_command(up_command)
main.add_command(status_command)
main.add_command(repo)
main.add_command(plc_command)
main.add_command(pds_command)
main.add_command(relay_command)
main.add_command(feedgen_command)
main.add_command(appview_command)
main.add_command(labeler_command)
main.add_command(web_command)
for account_tool in (migrate, export, import_backup, add_rotation_key_command):
    account.add_command(account_tool)
main.add_command(account)
main.add_command(hosts)
main.add_command(resolve)
