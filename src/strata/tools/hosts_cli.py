"""`strata hosts`: the operator's tools for a relay's upstream hosts and accounts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import click

from strata.tools.account_cli import admin_password, request


def _admin(ctx: click.Context, method: str, path: str, **kwargs: Any) -> Any:
    relay, password, data_dir = ctx.obj
    headers = {
        "Authorization": aiohttp.encode_basic_auth(
            "admin", admin_password(password, data_dir, "relay", "--password")
        )
    }
    return request(method, relay, path, "relay", "relay", headers=headers, **kwargs)


@click.group("hosts")
@click.option(
    "--relay",
    envvar="STRATA_RELAY",
    default="http://127.0.0.1:2584",
    show_default=True,
    metavar="URL",
    help="The relay to talk to.",
)
@click.option("--password", envvar="STRATA_ADMIN_PASSWORD", help="The relay's admin password.")
@click.option(
    "--data-dir",
    envvar="STRATA_DATA_DIR",
    type=click.Path(path_type=Path),
    default=Path("data") / "relay",
    show_default=True,
    help="The relay's data directory, to read the admin password from.",
)
@click.pass_context
def hosts(ctx: click.Context, relay: str, password: str | None, data_dir: Path) -> None:
    """Follow, list, ban and limit a relay's hosts; take accounts down."""
    ctx.obj = (relay, password, data_dir)


@hosts.command("list")
@click.pass_context
def list_hosts(ctx: click.Context) -> None:
    """Every host with its status, cursor, accounts and limits."""
    for host in _admin(ctx, "GET", "/admin/pds/list")["hosts"]:
        flags = [f for f in ("trusted", "lenient") if host[f]]
        click.echo(
            f"{host['hostname']}  {host['kind']}  {host['status']}"
            f"{'' if host['connected'] else ' (not connected)'}  seq {host['seq']}  "
            f"accounts {host['accountCount']}/{host['accountLimit']}  {' '.join(flags)}"
        )


@hosts.command("add")
@click.argument("host")
@click.pass_context
def add(ctx: click.Context, host: str) -> None:
    """Follow HOST (a host name or URL) after checking that it answers."""
    _admin(ctx, "POST", "/admin/pds/requestCrawl", body={"hostname": host})
    click.echo(f"following {host}")


@hosts.command("ban")
@click.argument("host")
@click.pass_context
def ban(ctx: click.Context, host: str) -> None:
    """Stop following HOST and refuse its crawl requests."""
    _admin(ctx, "POST", "/admin/pds/block", params={"host": host})
    click.echo(f"banned {host}")


@hosts.command("unban")
@click.argument("host")
@click.pass_context
def unban(ctx: click.Context, host: str) -> None:
    """Follow HOST again."""
    _admin(ctx, "POST", "/admin/pds/unblock", params={"host": host})
    click.echo(f"unbanned {host}")


@hosts.command("limits")
@click.argument("host")
@click.option("--account-limit", type=click.IntRange(min=0), help="Active accounts allowed.")
@click.option("--trusted/--not-trusted", default=None, help="The high event-rate tier.")
@click.option("--lenient/--strict", default=None, help="Strict sync 1.1 checks only warn.")
@click.pass_context
def limits(
    ctx: click.Context,
    host: str,
    account_limit: int | None,
    trusted: bool | None,
    lenient: bool | None,
) -> None:
    """Change HOST's account limit (its event limits scale with it), trust or leniency."""
    body = {"host": host, "repo_limit": account_limit, "trusted": trusted, "lenient": lenient}
    _admin(ctx, "POST", "/admin/pds/changeLimits", body=body)
    click.echo(f"limits of {host} changed")


@hosts.command("takedown")
@click.argument("did")
@click.option("--reverse", is_flag=True, help="Restore the account instead.")
@click.pass_context
def takedown(ctx: click.Context, did: str, reverse: bool) -> None:
    """Stop relaying DID's events (or, with --reverse, start again)."""
    path = "/admin/repo/reverseTakedown" if reverse else "/admin/repo/takeDown"
    _admin(ctx, "POST", path, body={"did": did})
    click.echo(f"{'restored' if reverse else 'took down'} {did}")
