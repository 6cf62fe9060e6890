"""Copying an account's data into a PDS: the repository, the blobs its records use, and its
private preferences. The source is the old PDS or a backup directory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from strata.core import cbor
from strata.core.car import read_car
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.core.repo import Repository, repo_blocks
from strata.net.client import XrpcClient, XrpcFailed
from strata.pds.writer import find_blobs
from strata.resilience import Backoff

CAR_TYPE = "application/vnd.ipld.car"
BLOB_ATTEMPTS = 3
PAGE = 500

# A network failure, or an XRPC error answer: what a step of a transfer can fail with.
TRANSFER_ERRORS = (XrpcFailed, aiohttp.ClientError, TimeoutError, OSError)


class TransferFailed(Exception):
    """Data could not be copied or does not check out; the message says which."""


@dataclass(frozen=True)
class RepoSummary:
    """What a repository export holds, to compare both sides of a move."""

    did: str
    root: str
    rev: str
    records: int
    blobs: frozenset[str]


def summarize(car: bytes) -> RepoSummary:
    """Read a repository CAR: its commit, how many records, which blobs they use."""
    try:
        root, blocks = read_car(car)
        repo = Repository.load(blocks, root)
        reachable = dict(repo_blocks(repo))
        records = list(repo.records())
        blobs = {
            str(ref.cid) for _, cid in records for ref in find_blobs(cbor.decode(reachable[cid]))
        }
    except (CoreError, KeyError) as exc:
        raise TransferFailed(f"the repository export is not a complete repository: {exc}") from exc
    return RepoSummary(repo.did, str(root), repo.rev, len(records), frozenset(blobs))


class Source(Protocol):
    """Where an account's data is copied from."""

    async def repo(self) -> bytes: ...

    async def blob(self, cid: str) -> tuple[bytes, str]: ...

    async def preferences(self) -> list[object]: ...


class PdsSource:
    """An account on a PDS that is still up (signed in, for the preferences)."""

    def __init__(self, client: XrpcClient, did: str) -> None:
        self.client = client
        self.did = did

    async def repo(self) -> bytes:
        car, _ = await self.client.query_bytes("com.atproto.sync.getRepo", did=self.did)
        return car

    async def blob(self, cid: str) -> tuple[bytes, str]:
        return await self.client.query_bytes("com.atproto.sync.getBlob", did=self.did, cid=cid)

    async def preferences(self) -> list[object]:
        answer = await self.client.query("app.bsky.actor.getPreferences")
        return list(answer.get("preferences", []))

    async def latest_root(self) -> str:
        answer = await self.client.query("com.atproto.sync.getLatestCommit", did=self.did)
        return str(answer["cid"])


async def copy_repo(source: Source, destination: XrpcClient, did: str) -> tuple[RepoSummary, int]:
    """Import the source's repository into the destination, once it is checked to be a whole
    repository of `did`; returns what it holds and its size in bytes."""
    car = await source.repo()
    summary = summarize(car)
    if summary.did != did:
        raise TransferFailed(f"the repository is {summary.did}'s, not {did}'s")
    await destination.procedure("com.atproto.repo.importRepo", data=car, content_type=CAR_TYPE)
    return summary, len(car)


async def missing_blobs(destination: XrpcClient) -> list[str]:
    """Every blob the destination's records use and it does not hold yet (listed once, though
    the PDS names it once per record using it)."""
    missing: dict[str, None] = {}
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": PAGE}
        if cursor:
            params["cursor"] = cursor
        page = await destination.query("com.atproto.repo.listMissingBlobs", **params)
        missing.update((str(blob["cid"]), None) for blob in page.get("blobs", []))
        cursor = page.get("cursor")
        if not cursor or not page.get("blobs"):
            return list(missing)


BlobProgress = Callable[[int, int, str, int], None]


async def copy_blobs(
    source: Source,
    destination: XrpcClient,
    progress: BlobProgress,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Upload every blob the destination is missing, each tried `BLOB_ATTEMPTS` times with a
    backoff; `progress(n, total, cid, size)` follows each one. Returns how many moved."""
    missing = await missing_blobs(destination)
    for n, cid in enumerate(missing, 1):
        backoff = Backoff(base=0.5, cap=5.0)
        for attempt in range(1, BLOB_ATTEMPTS + 1):
            try:
                size = await _copy_blob(source, destination, cid)
                break
            except TRANSFER_ERRORS as exc:
                if attempt == BLOB_ATTEMPTS:
                    raise TransferFailed(
                        f"blob {cid} failed {BLOB_ATTEMPTS} times, last with: {exc}"
                    ) from exc
                await sleep(backoff.next_delay())
        progress(n, len(missing), cid, size)
    return len(missing)


async def _copy_blob(source: Source, destination: XrpcClient, cid: str) -> int:
    data, mime = await source.blob(cid)
    if not CID.from_str(cid).verify(data):
        raise TransferFailed(f"blob {cid} arrived with other content")
    answer = await destination.procedure(
        "com.atproto.repo.uploadBlob", data=data, content_type=mime or "application/octet-stream"
    )
    stored = answer["blob"]["ref"]["$link"]
    if stored != cid:
        raise TransferFailed(f"blob {cid} was stored as {stored}")
    return len(data)


async def copy_preferences(source: Source, destination: XrpcClient) -> int:
    preferences = await source.preferences()
    await destination.procedure("app.bsky.actor.putPreferences", {"preferences": preferences})
    return len(preferences)
