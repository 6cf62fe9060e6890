"""`strata account`: operator tools for a PDS's accounts, over its XRPC API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import click

from strata.pds.config import SECRETS_FILE

PDS_OPTION = click.option(
    "--pds",
    envvar="STRATA_PDS",
    default="http://127.0.0.1:2583",
    show_default=True,
    metavar="URL",
    help="The PDS to talk to.",
)


async def _request(
    method: str,
    url: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.request(method, url, json=body, params=params, headers=headers) as response,
    ):
        text = await response.text()
        answer = json.loads(text) if text else {}
        if response.status != 200:
            raise click.ClickException(
                f"{url.rsplit('/', 1)[-1]} failed with {response.status} "
                f"{answer.get('error', '')}: {answer.get('message', text)}"
            )
        return answer


def request(method: str, base: str, path: str, service: str, command: str, **kwargs: Any) -> Any:
    """One HTTP call to a Strata service; a failure becomes a message for the operator."""
    try:
        return asyncio.run(_request(method, f"{base.rstrip('/')}{path}", **kwargs))
    except aiohttp.ClientError as exc:
        raise click.ClickException(
            f"cannot reach the {service} at {base}: {exc}. Is `strata {command}` running?"
        ) from exc


def call(method: str, pds: str, nsid: str, **kwargs: Any) -> Any:
    """One XRPC call to a PDS."""
    return request(method, pds, f"/xrpc/{nsid}", "PDS", "pds", **kwargs)


@click.group("account")
def account() -> None:
    """Accounts: create, list and reset passwords (operators); move, back up and protect
    them (users)."""


@account.command("create")
@PDS_OPTION
@click.option("--handle", required=True, help="For example alice.test.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--email", default=None, help="Defaults to <handle>@<pds hostname>.")
@click.option("--invite-code", default=None, help="Needed when the PDS requires invites.")
def create(
    pds: str, handle: str, password: str, email: str | None, invite_code: str | None
) -> None:
    """Create an account with a new did:plc."""
    body: dict[str, Any] = {
        "handle": handle,
        "password": password,
        "email": email or f"{handle}@invalid",
    }
    if invite_code:
        body["inviteCode"] = invite_code
    answer = call("POST", pds, "com.atproto.server.createAccount", body=body)
    click.echo(f"created {answer['handle']} as {answer['did']}")


@account.command("list")
@PDS_OPTION
def list_accounts(pds: str) -> None:
    """List the accounts hosted on the PDS, with their status."""
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = call("GET", pds, "com.atproto.sync.listRepos", params=params)
        for repo in page["repos"]:
            status = "active" if repo.get("active", True) else repo.get("status", "inactive")
            click.echo(f"{repo['did']}  {status}  rev {repo['rev']}")
        cursor = page.get("cursor")
        if not cursor:
            return


def admin_password(given: str | None, data_dir: Path, service: str, option: str) -> str:
    """The admin password given on the command line, else the one in the service's
    `secrets.json` (the PDS and the relay keep it there); a message says what to do without."""
    if given:
        return given
    path = data_dir / SECRETS_FILE
    try:
        return str(json.loads(path.read_text())["admin_password"])
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(
            f"no admin password: pass {option}, or --data-dir of the {service} ({path}: {exc})"
        ) from exc


@account.command("password")
@PDS_OPTION
@click.option("--handle", "actor", required=True, help="Handle or DID of the account.")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True)
@click.option(
    "--admin-password",
    "given_password",
    envvar="STRATA_ADMIN_PASSWORD",
    default=None,
    help="The PDS's admin password [default: read from secrets.json in --data-dir].",
)
@click.option(
    "--data-dir",
    envvar="STRATA_DATA_DIR",
    type=click.Path(path_type=Path),
    default=Path("data") / "pds",
    show_default=True,
    help="The PDS's data directory, for its admin password.",
)
def set_password(
    pds: str, actor: str, password: str, given_password: str | None, data_dir: Path
) -> None:
    """Set a new password for an account (the operator's reset, with the admin password)."""
    secret = admin_password(given_password, data_dir, "PDS", "--admin-password")
    did = actor
    if not actor.startswith("did:"):
        did = call("GET", pds, "com.atproto.identity.resolveHandle", params={"handle": actor})[
            "did"
        ]
    call(
        "POST",
        pds,
        "com.atproto.admin.updateAccountPassword",
        body={"did": did, "password": password},
        headers={"Authorization": aiohttp.encode_basic_auth("admin", secret)},
    )
    click.echo(f"password of {actor} ({did}) changed")
