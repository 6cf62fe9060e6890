"""Bringing a desynchronized account back: fetch its whole repository from its PDS, verify it,
and relay a `#sync` so consumers reset to it.

An account is desynchronized when a commit does not chain onto the tree the relay last saw
(events were lost somewhere upstream). Until the fetch succeeds its commits are dropped;
failures retry with backoff, a bounded number of times, and a later `#sync` from the host also
ends the state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
from prometheus_client import Counter

from strata.core.car import write_car
from strata.core.errors import CoreError
from strata.identity import IdentityResolver
from strata.identity.errors import IdentityNotFound, ResolutionFailed
from strata.net.logs import log_event
from strata.net.repo_fetch import RepoFetchFailed, fetch_repo
from strata.relay.ingest import Ingest
from strata.resilience import Backoff

log = logging.getLogger("strata.relay.resync")

ATTEMPTS: Final = 5

RESYNCS = Counter(
    "strata_relay_resyncs_total", "Desynchronized accounts fetched again", ["outcome"]
)


class ResyncFailed(Exception):
    """The account's repository could not be fetched or did not verify."""


class Resyncer:
    """Background fetches of desynchronized accounts, one task per account at most."""

    def __init__(
        self,
        ingest: Ingest,
        resolver: IdentityResolver,
        session: aiohttp.ClientSession,
        after_sync: Callable[[], Awaitable[None]],
    ) -> None:
        self.ingest = ingest
        self.resolver = resolver
        self.session = session
        self.after_sync = after_sync
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def schedule(self, did: str) -> None:
        if did not in self.tasks:
            task = asyncio.create_task(self._run(did), name=f"resync {did}")
            self.tasks[did] = task
            task.add_done_callback(lambda _t: self.tasks.pop(did, None))

    async def stop(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _run(self, did: str) -> None:
        backoff = Backoff(base=2.0, cap=120.0)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.resync(did)
                RESYNCS.labels("synced").inc()
                log_event(log, "account resynchronized", did=did, attempt=attempt)
                await self.after_sync()
                return
            except (ResyncFailed, ResolutionFailed, IdentityNotFound) as exc:
                log_event(
                    log, "resync failed", logging.WARNING, did=did, attempt=attempt, error=str(exc)
                )
            await asyncio.sleep(backoff.next_delay())
        RESYNCS.labels("gave_up").inc()

    async def resync(self, did: str) -> None:
        """Fetch, verify and apply `did`'s current repository."""
        self.resolver.forget(did)
        document = (await self.resolver.resolve_did(did)).value
        endpoint, key = document.pds_endpoint, document.signing_key()
        if endpoint is None or key is None:
            raise ResyncFailed(f"{did} has no PDS or no signing key in its DID document")
        try:
            repo = await fetch_repo(self.session, endpoint, did, timeout=300)
        except RepoFetchFailed as exc:
            raise ResyncFailed(str(exc)) from exc
        try:
            repo.tree.check()
        except CoreError as exc:
            raise ResyncFailed(f"repository does not verify: {exc}") from exc
        if not repo.commit.verify(key):
            raise ResyncFailed("repository commit is not signed by the account's key")
        account = await self.ingest.store.account(did)
        if account is None:
            raise ResyncFailed(f"{did} is not known to the relay")
        commit_cid, commit_block = repo.commit.encode()
        body = {
            "did": did,
            "rev": repo.rev,
            "blocks": write_car([commit_cid], [(commit_cid, commit_block)]),
            "time": self.ingest.iso_now(),
        }
        self.ingest.apply_sync(account, repo.rev, str(commit_cid), str(repo.commit.data), body)
