"""Fetching an account's whole repository from its PDS (`com.atproto.sync.getRepo`), as a relay
does to resynchronize an account and an AppView does to backfill one. A redirect is not followed:
the PDS named in the account's DID document answers, or the fetch fails."""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp

from strata.core.errors import CoreError
from strata.core.repo import Repository, import_car

MAX_REPO_BYTES: Final = 256 << 20
"""Larger repositories are refused rather than held in memory."""


class RepoFetchFailed(Exception):
    """The repository could not be fetched, was too large, or is not `did`'s."""


async def fetch_repo(
    session: aiohttp.ClientSession, pds: str, did: str, timeout: float
) -> Repository:
    """`did`'s repository from the PDS at `pds`, parsed (in a thread: it is CPU work)."""
    url = f"{pds.rstrip('/')}/xrpc/com.atproto.sync.getRepo"
    try:
        async with session.get(
            url,
            params={"did": did},
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if response.status != 200:
                raise RepoFetchFailed(f"getRepo answered {response.status}")
            data = bytearray()
            async for chunk in response.content.iter_chunked(1 << 16):
                data += chunk
                if len(data) > MAX_REPO_BYTES:
                    raise RepoFetchFailed("the repository is larger than is fetched")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RepoFetchFailed(f"getRepo failed: {exc or type(exc).__name__}") from exc
    try:
        repo = await asyncio.to_thread(import_car, bytes(data))
    except CoreError as exc:
        raise RepoFetchFailed(f"the repository does not parse: {exc}") from exc
    if repo.did != did:
        raise RepoFetchFailed(f"getRepo returned the repository of {repo.did}")
    return repo
