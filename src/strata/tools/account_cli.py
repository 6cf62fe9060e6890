"""`strata account`: operator tools for a PDS's accounts, over its XRPC API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import click

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
    """Create and list accounts on a PDS."""


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
