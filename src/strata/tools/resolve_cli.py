"""`strata resolve`: look up a DID or handle the way every Strata service does."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import click

from strata.identity import IdentityError, IdentityResolver

PLC_OPTION = click.option(
    "--plc",
    "plc_urls",
    multiple=True,
    envvar="STRATA_PLC",
    default=["https://plc.directory"],
    show_default=True,
    metavar="URL",
    help="PLC directories in order of preference (repeat for mirrors).",
)


@click.command("resolve")
@click.argument("identifier")
@PLC_OPTION
@click.option("--dev", envvar="STRATA_DEV", is_flag=True, help="Allow http:// and loopback hosts.")
@click.option("--document", is_flag=True, help="Print the whole DID document.")
def resolve(identifier: str, plc_urls: tuple[str, ...], dev: bool, document: bool) -> None:
    """Resolve a DID or handle, and check that the handle points back to the DID."""

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            resolver = IdentityResolver(session, plc_urls, dev=dev)
            identity = await resolver.resolve(identifier)
        if document:
            click.echo(json.dumps(identity.document.raw, indent=2))
            return
        key = identity.document.signing_key()
        click.echo(f"did:          {identity.did}")
        click.echo(f"handle:       {identity.handle}")
        click.echo(f"pds:          {identity.document.pds_endpoint or '(none)'}")
        click.echo(f"signing key:  {key.did_key() if key else '(none)'}")

    try:
        asyncio.run(run())
    except IdentityError as exc:
        raise click.ClickException(
            f"{type(exc).__name__}: {exc}. Check the identifier, or pass --plc with a "
            "directory (and its mirrors) that you can reach."
        ) from exc
