"""`strata labeler`: run a labeler; `label`, `reports` for its operator; `setup` to make an
account a labeler (its DID document names this labeler's key and address, and its repository
holds the `app.bsky.labeler.service` record apps show)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any, Final

import aiohttp
import click

from strata.core.errors import CoreError
from strata.core.syntax import validate_did
from strata.labeler.app import create_labeler_app
from strata.labeler.service import Labeler, LabelerSecrets
from strata.labeler.setup import DEFAULT_VALUES, make_labeler, request_code
from strata.net.client import XrpcClient, XrpcFailed
from strata.serve import PLC_URLS, http_urls, options_from, run_service, service_options
from strata.tools.account_cli import PDS_OPTION, request

DEFAULT_URL: Final = "http://127.0.0.1:2587"

URL_OPTION = click.option(
    "--url", envvar="STRATA_LABELER_URL", default=DEFAULT_URL, show_default=True, metavar="URL",
    help="The labeler to talk to.",
)  # fmt: skip
DATA_DIR_OPTION = click.option(
    "--data-dir", envvar="STRATA_DATA_DIR", type=click.Path(path_type=Path),
    default=Path("data") / "labeler", show_default=True,
    help="The labeler's data directory (its admin password and key are read there).",
)  # fmt: skip


def _basic(data_dir: Path) -> dict[str, str]:
    password = LabelerSecrets.load_or_create(data_dir).admin_password
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@click.group("labeler", invoke_without_command=True)
@service_options(default_port=2587, default_dir="labeler")
@PLC_URLS
@click.option(
    "--did", envvar="STRATA_LABELER_DID", metavar="DID",
    help="The account this labeler labels as (see `strata labeler setup`).",
)  # fmt: skip
@click.pass_context
def labeler_command(
    ctx: click.Context, /, plc_urls: tuple[str, ...], did: str | None, **kwargs: Any
) -> None:
    """Run a labeler: sign labels, stream them to AppViews, and receive reports."""
    if ctx.invoked_subcommand is not None:
        return
    options = options_from(kwargs)
    if did is None:
        raise click.UsageError("give the labeler's account with --did (see `strata labeler setup`)")
    try:
        validate_did(did)
    except CoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--did") from exc
    labeler = Labeler(did, options.data_dir)
    click.echo(f"Labeler {did}, signing with {labeler.secrets.signing_key.did()}")
    plc = http_urls("--plc-url", plc_urls)
    run_service("labeler", options, lambda: create_labeler_app(labeler, plc, options.dev))


@labeler_command.command("label")
@URL_OPTION
@DATA_DIR_OPTION
@click.option("--uri", required=True, help="The account (DID) or record (at:// URI) to label.")
@click.option("--val", required=True, help="The label's value, for example spam or !hide.")
@click.option("--neg", is_flag=True, help="Take the label back.")
def label_command(url: str, data_dir: Path, uri: str, val: str, neg: bool) -> None:
    """Put a label on an account or a record (or take it back with --neg)."""
    answer = request(
        "POST", url, "/admin/label", "labeler", "labeler",
        body={"uri": uri, "val": val, "neg": neg}, headers=_basic(data_dir),
    )  # fmt: skip
    click.echo(f"{'negated' if neg else 'labeled'} {answer['uri']} {answer['val']}")


@labeler_command.command("reports")
@URL_OPTION
@DATA_DIR_OPTION
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
def reports_command(url: str, data_dir: Path, limit: int) -> None:
    """List the reports received, newest first."""
    answer = request(
        "GET", url, "/admin/reports", "labeler", "labeler",
        params={"limit": limit}, headers=_basic(data_dir),
    )  # fmt: skip
    for report in answer["reports"]:
        subject = report["subject"].get("uri") or report["subject"].get("did")
        reason = f": {report['reason']}" if report.get("reason") else ""
        click.echo(
            f"#{report['id']} {report['createdAt']} {report['reasonType'].rpartition('#')[2]} "
            f"{subject} by {report['reportedBy']}{reason}"
        )


@labeler_command.command("setup")
@PDS_OPTION
@DATA_DIR_OPTION
@click.option("--identifier", envvar="STRATA_IDENTIFIER", required=True,
              help="Handle or DID of the account that will be the labeler.")  # fmt: skip
@click.option("--password", envvar="STRATA_PASSWORD", prompt=True, hide_input=True)
@click.option("--labeler-url", required=True, metavar="URL",
              help="Where AppViews reach this labeler (its public URL).")  # fmt: skip
@click.option("--plc-token", envvar="STRATA_PLC_TOKEN", metavar="CODE",
              help="The code the PDS emailed for the change (asked for when absent).")  # fmt: skip
@click.option("--value", "values", multiple=True, default=DEFAULT_VALUES, show_default=True,
              help="Label values the labeler declares (repeat the option).")  # fmt: skip
def setup_command(
    pds: str, data_dir: Path, identifier: str, password: str, labeler_url: str,
    plc_token: str | None, values: tuple[str, ...],
) -> None:  # fmt: skip
    """Make an account a labeler: its DID document names this labeler's key (#atproto_label)
    and address (#atproto_labeler), and its repository declares the label values. The PDS
    mails a code to the account first; give it with --plc-token, or at the prompt."""
    key = LabelerSecrets.load_or_create(data_dir).signing_key

    async def work() -> str:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = XrpcClient(http, pds)
            session = await client.login(identifier, password)
            code = plc_token
            if code is None:
                await request_code(client)
                code = str(click.prompt("The PDS mailed the account a confirmation code; enter it"))
            await make_labeler(client, key, labeler_url, values, code)
            return session.did

    try:
        did = asyncio.run(work())
    except (XrpcFailed, aiohttp.ClientError) as exc:
        raise click.ClickException(f"the labeler could not be set up: {exc}") from exc
    click.echo(f"{did} is a labeler at {labeler_url}: run "
               f"`strata labeler --did {did} --data-dir {data_dir}`")  # fmt: skip
