"""`strata repo`: inspect, list, read and verify repository CAR files (in the spirit of goat)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import NoReturn

import click

from strata.core import cbor
from strata.core.crypto import parse_did_key
from strata.core.errors import CoreError
from strata.core.repo import Repository, import_car


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _open(path: Path) -> Repository:
    try:
        with path.open("rb") as f:
            return import_car(f)
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    except CoreError as exc:
        _fail(f"{path} is not a valid repository CAR: {exc}")


@click.group()
def repo() -> None:
    """Work with repository CAR files (from com.atproto.sync.getRepo or `strata account export`)."""


@repo.command()
@click.argument("car", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def inspect(car: Path) -> None:
    """Show the DID, revision, commit CID and record counts per collection."""
    r = _open(car)
    counts = Counter(path.split("/", 1)[0] for path, _ in r.records())
    click.echo(f"DID:        {r.did}")
    click.echo(f"rev:        {r.rev}")
    click.echo(f"commit:     {r.commit_cid}")
    click.echo(f"data (MST): {r.commit.data}")
    click.echo(f"records:    {sum(counts.values())}")
    for collection, n in sorted(counts.items()):
        click.echo(f"  {collection:<40} {n:>8}")


@repo.command(name="ls")
@click.argument("car", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--collection", "-c", help="Only this collection.")
def ls(car: Path, collection: str | None) -> None:
    """List every record: its path and CID, one a line."""
    r = _open(car)
    for path, cid in r.records(collection):
        click.echo(f"{path}\t{cid}")


@repo.command()
@click.argument("car", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("path")
def get(car: Path, path: str) -> None:
    """Print the record at COLLECTION/RKEY as JSON."""
    r = _open(car)
    collection, _, rkey = path.partition("/")
    try:
        found = r.get_record(collection, rkey)
    except CoreError as exc:
        _fail(f"cannot read {path}: {exc}")
    if found is None:
        _fail(f"no record at {path} (try `strata repo ls {car}`)")
    click.echo(json.dumps(cbor.to_json(found[1]), indent=2, ensure_ascii=False))


@repo.command()
@click.argument("car", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--did-key", help="Also check the commit signature against this did:key.")
def verify(car: Path, did_key: str | None) -> None:
    """Check structure, MST, CIDs and (with --did-key) the signature.

    Exits 0 only when every check passes; otherwise names the first failure.
    """
    r = _open(car)
    click.echo(f"ok  CAR structure and block CIDs ({car.name})")
    click.echo(f"ok  commit {r.commit_cid} for {r.did} at rev {r.rev}")
    try:
        count = r.tree.check()
    except CoreError as exc:
        _fail(f"MST: {exc}")
    click.echo(f"ok  MST structure ({count} records)")
    for path, cid in r.records():
        block = r.store.get(cid)
        if block is None:
            _fail(f"record {path} ({cid}) is missing from the CAR")
        try:
            value = cbor.decode(block)
        except CoreError as exc:
            _fail(f"record {path} is not valid DAG-CBOR: {exc}")
        if not isinstance(value, dict):
            _fail(f"record {path} is not an object")
    click.echo("ok  every record present and decodable")
    if did_key is None:
        click.echo("--  signature not checked (pass --did-key to check it)")
        return
    try:
        key = parse_did_key(did_key)
    except CoreError as exc:
        _fail(f"--did-key: {exc}")
    if not r.commit.verify(key):
        _fail(f"commit signature does not verify with {did_key}")
    click.echo("ok  commit signature")
