"""`strata account migrate|export|import|add-rotation-key`: a user's tools for leaving a PDS."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import click

from strata.core.crypto import Keypair
from strata.identity import IdentityError, IdentityResolver
from strata.migration.backup import BackupSource, export_account
from strata.migration.flow import (
    STEP_ERRORS,
    Migration,
    MigrationError,
    MigrationOptions,
    NeedsToken,
)
from strata.migration.rotation import (
    RotationKeyError,
    add_rotation_key,
    create_key,
    last_operation,
    load_key,
)
from strata.migration.transfer import (
    PdsSource,
    TransferFailed,
    copy_blobs,
    copy_preferences,
    copy_repo,
)
from strata.net.client import Session, XrpcClient
from strata.pds.plc_client import PlcClient
from strata.tools.resolve_cli import PLC_OPTION

T = TypeVar("T")

# Migrations move whole repositories: no overall limit, but a stalled connection still ends.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=15, sock_read=300)

PDS_OPTION = click.option(
    "--pds", envvar="STRATA_PDS", required=True, metavar="URL", help="The account's PDS."
)
ACCOUNT_OPTION = click.option(
    "--account", "identifier", required=True, help="Handle, DID or email of the account."
)
PASSWORD_OPTION = click.option(
    "--password",
    envvar="STRATA_PASSWORD",
    prompt=True,
    hide_input=True,
    help="The account's password (or STRATA_PASSWORD).",
)
TOKEN_OPTION = click.option(
    "--plc-token", default=None, help="The confirmation code the PDS emailed to the account."
)


def _run(work: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    async def main() -> T:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            return await work(http)

    try:
        return asyncio.run(main())
    except NeedsToken as exc:
        raise click.ClickException(
            f"{exc} Run the same command again with --plc-token CODE."
        ) from exc
    except (MigrationError, RotationKeyError, TransferFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    except STEP_ERRORS as exc:
        raise click.ClickException(f"{exc}. Nothing is lost: run the same command again.") from exc


def _key(path: Path, create: bool = False) -> Keypair:
    try:
        return create_key(path) if create and not path.exists() else load_key(path)
    except RotationKeyError as exc:
        raise click.ClickException(str(exc)) from exc


def _prompt_token(error: NeedsToken) -> str | None:
    """The code, asked for on a terminal; None when nobody can answer (a script)."""
    if not sys.stdin.isatty():
        return None
    click.echo(str(error))
    token: str = click.prompt("Confirmation code")
    return token.strip()


@click.command("migrate")
@click.option(
    "--from",
    "source",
    default=None,
    metavar="PDS",
    help="The old PDS's URL, or the account's handle or DID (its PDS is looked up).",
)
@click.option(
    "--account",
    "identifier",
    default=None,
    help="Handle, DID or email on the old PDS (when --from is a URL).",
)
@click.option("--to", "destination", required=True, metavar="URL", help="The new PDS.")
@click.option("--handle", default=None, help="Handle on the new PDS (default: the current one).")
@click.option("--email", default=None, help="Email on the new PDS (default: the current one).")
@click.option("--invite-code", default=None, help="Needed when the new PDS requires invites.")
@PASSWORD_OPTION
@TOKEN_OPTION
@click.option(
    "--rotation-key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Sign the DID's move with your own rotation key instead of through the old PDS.",
)
@click.option(
    "--backup",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Move from this export (`strata account export`) when the old PDS is gone.",
)
@PLC_OPTION
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("strata-migration.json"),
    show_default=True,
    help="Where the finished steps are recorded; run again with the same file to continue.",
)
@click.option("--dry-run", is_flag=True, help="Explain what would be done, change nothing.")
def migrate(
    source: str | None,
    identifier: str | None,
    destination: str,
    handle: str | None,
    email: str | None,
    invite_code: str | None,
    password: str,
    plc_token: str | None,
    key_file: Path | None,
    backup: Path | None,
    plc_urls: tuple[str, ...],
    state_path: Path,
    dry_run: bool,
) -> None:
    """Move an account to another PDS: its repository, blobs, preferences and identity.

    Every step is recorded in the state file; after a failure or Ctrl-C, run the same
    command again and it continues where it stopped.
    """
    if (source is None) == (backup is None):
        raise click.UsageError("give the old PDS (--from URL --account NAME) or --backup DIR")
    by_name = source is not None and not source.startswith(("http://", "https://"))
    if by_name:
        identifier = identifier or source
    elif source is not None and identifier is None:
        raise click.UsageError("--account names the account on the old PDS")
    options = MigrationOptions(
        destination=destination.rstrip("/"),
        password=password,
        state_path=state_path,
        plc_urls=plc_urls,
        source_url=source.rstrip("/") if source else None,
        identifier=identifier,
        backup=backup,
        handle=handle,
        email=email,
        invite_code=invite_code,
        plc_token=plc_token,
        rotation_key=_key(key_file) if key_file is not None else None,
    )

    async def work(http: aiohttp.ClientSession) -> None:
        nonlocal options
        if by_name:
            assert source is not None
            options = dataclasses.replace(options, source_url=await _pds_of(http, source, plc_urls))
        while True:
            migration = Migration(http, options, click.echo)
            await migration.prepare()
            if dry_run:
                await migration.explain()
                return
            try:
                await migration.run()
            except NeedsToken as exc:
                token = _prompt_token(exc)
                if token is None:
                    raise
                options = dataclasses.replace(options, plc_token=token)
                continue
            for line in migration.report():
                click.echo(line)
            return

    _run(work)


async def _pds_of(http: aiohttp.ClientSession, account: str, plc_urls: tuple[str, ...]) -> str:
    """The PDS that the account's DID document names."""
    try:
        identity = await IdentityResolver(http, plc_urls).resolve(account)
    except IdentityError as exc:
        raise MigrationError(f"cannot find {account}'s PDS: {exc}") from exc
    endpoint = identity.document.pds_endpoint
    if endpoint is None:
        raise MigrationError(f"{account}'s DID document names no PDS; pass --from URL")
    return endpoint.rstrip("/")


async def _signed_in(
    http: aiohttp.ClientSession, pds: str, identifier: str, password: str
) -> tuple[XrpcClient, Session]:
    client = XrpcClient(http, pds.rstrip("/"))
    return client, await client.login(identifier, password)


@click.command("export")
@PDS_OPTION
@ACCOUNT_OPTION
@PASSWORD_OPTION
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The backup directory (created; an earlier export there is brought up to date).",
)
def export(pds: str, identifier: str, password: str, out: Path) -> None:
    """Save an account's repository, blobs and preferences into one directory."""

    async def work(http: aiohttp.ClientSession) -> None:
        client, session = await _signed_in(http, pds, identifier, password)
        report = await export_account(
            PdsSource(client, session.did),
            session.handle,
            client.base,
            out,
            lambda n, total, cid: click.echo(f"  blob {n}/{total} {cid}"),
        )
        summary = report.summary
        click.echo(
            f"Exported {summary.did} into {out}: {summary.records} records (root "
            f"{summary.root}), {len(summary.blobs)} blobs ({report.blobs_fetched} fetched, "
            f"{report.blobs_kept} already there), {report.preferences} preferences."
        )

    _run(work)


@click.command("import")
@PDS_OPTION
@ACCOUNT_OPTION
@PASSWORD_OPTION
@click.option(
    "--backup",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="A directory written by `strata account export`.",
)
def import_backup(pds: str, identifier: str, password: str, backup: Path) -> None:
    """Load a backup into the same account on a PDS: repository, missing blobs, preferences."""

    async def work(http: aiohttp.ClientSession) -> None:
        client, session = await _signed_in(http, pds, identifier, password)
        source = BackupSource(backup)
        summary, _ = await copy_repo(source, client, session.did)
        click.echo(f"Imported {summary.records} records (root {summary.root}).")
        moved = await copy_blobs(
            source,
            client,
            lambda n, total, cid, size: click.echo(f"  blob {n}/{total} {cid}"),
        )
        preferences = await copy_preferences(source, client)
        click.echo(f"Uploaded {moved} missing blobs; restored {preferences} preferences.")

    _run(work)


@click.command("add-rotation-key")
@PDS_OPTION
@ACCOUNT_OPTION
@PASSWORD_OPTION
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The key's file: read if it exists, else a new key is written there.",
)
@TOKEN_OPTION
@PLC_OPTION
def add_rotation_key_command(
    pds: str,
    identifier: str,
    password: str,
    key_file: Path,
    plc_token: str | None,
    plc_urls: tuple[str, ...],
) -> None:
    """List a key you hold first among your DID's rotation keys, so that you can move your
    identity even if your PDS disappears."""
    key = _key(key_file, create=True)
    click.echo(f"Rotation key {key.did()} in {key_file} (keep a copy offline).")

    async def work(http: aiohttp.ClientSession) -> None:
        client, session = await _signed_in(http, pds, identifier, password)
        plc = PlcClient(http, plc_urls)
        did = session.did
        last = await last_operation(plc, did)
        if key.did() in last.get("rotationKeys", []):
            click.echo(f"{did} already lists it.")
            return
        token = plc_token
        if not token:
            await client.procedure("com.atproto.identity.requestPlcOperationSignature")
            message = NeedsToken(f"{pds} has emailed a confirmation code to the account's address.")
            token = _prompt_token(message)
            if token is None:
                raise message
        await add_rotation_key(client, last, key, token)
        click.echo(
            f"{did} now lists {key.did()} first among its rotation keys. If your PDS is ever "
            "gone: strata account migrate --backup DIR --rotation-key "
            f"{key_file} --to NEW-PDS"
        )

    _run(work)
