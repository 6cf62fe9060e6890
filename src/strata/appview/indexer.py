"""The AppView's indexer: firehose events in, index rows out.

Relays have verified every commit's signature and chain, so the indexer trusts their events, but
not their records: a record that fails its lexicon is skipped and counted. An account is fetched
whole from its PDS (`getRepo`) when it first appears in the middle of its history, or when a
commit does not follow the last one indexed (events were lost, or the consumer moved to another
relay); its live commits wait until the fetch is indexed, then those newer than it are applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from prometheus_client import Counter

from strata.appview.cache import HotCache
from strata.appview.invalidation import Announcer
from strata.appview.records import INDEXED, delete_record, index_record
from strata.core import cbor
from strata.core.car import CarReader
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.core.frames import Frame
from strata.core.lexicon import Catalog
from strata.core.syntax import INVALID_HANDLE
from strata.database import Database, Executor
from strata.identity import IdentityResolver
from strata.identity.errors import IdentityError
from strata.net.logs import log_event
from strata.net.repo_fetch import RepoFetchFailed, fetch_repo
from strata.pds.sequencer import iso_now
from strata.resilience import Backoff

log = logging.getLogger("strata.appview.indexer")

BACKFILL_ATTEMPTS: Final = 5
MAX_WAITING_BYTES: Final = 8 << 20
"""Of one account's commits held while its repository is fetched; past it they are dropped
and the repository fetched again afterwards (the later copy holds them)."""
BACKFILL_CONCURRENCY: Final = 4

EVENTS = Counter("strata_appview_events_total", "Firehose events indexed", ["type"])
INVALID = Counter(
    "strata_appview_invalid_records_total", "Records skipped for failing their lexicon"
)
BACKFILLS = Counter("strata_appview_backfills_total", "Repositories fetched whole", ["outcome"])


@dataclass
class ActorState:
    rev: str | None
    status: str


class Indexer:
    """Applies batches of relay events to the index."""

    def __init__(
        self,
        db: Database,
        resolver: IdentityResolver | None,
        session: aiohttp.ClientSession | None,
        catalog: Catalog | None = None,
        dev: bool = False,
        cache: HotCache | None = None,
        announce: Announcer | None = None,
    ) -> None:
        self.db = db
        self.cache = cache or HotCache()
        """Told, after each transaction, which views the transaction changed."""
        self.announce = announce or Announcer(shared=False)
        """Tells other processes serving this index what each transaction changed."""
        self.resolver = resolver
        self.session = session
        self.catalog = catalog or Catalog.bundled()
        self.dev = dev
        self.states: dict[str, ActorState] = {}
        self.waiting: dict[str, list[dict[str, Any]]] = {}
        """Commits of accounts being fetched whole, applied after the fetch."""
        self.waiting_bytes: dict[str, int] = {}
        self.overflowed: set[str] = set()
        """Accounts whose held commits went past `MAX_WAITING_BYTES`: fetched again."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.limit = asyncio.Semaphore(BACKFILL_CONCURRENCY)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def load_cursor(self, relay: str) -> int | None:
        row = await self.db.fetchrow("SELECT seq FROM relay_cursor WHERE relay = ?", relay)
        return int(row[0]) if row else None

    async def _state(self, tx: Executor, did: str) -> ActorState | None:
        state = self.states.get(did)
        if state is None:
            row = await tx.fetchrow("SELECT rev, status FROM actor WHERE did = ?", did)
            if row is None:
                return None
            state = self.states[did] = ActorState(row[0], row[1])
        return state

    async def handle_batch(self, relay: str, batch: list[tuple[int, Frame]]) -> None:
        """Index a batch of events and store the relay's cursor in the same transaction."""
        indexed_at = iso_now()
        fetch: list[str] = []
        refresh: list[str] = []
        changed: set[str] = set()
        try:
            async with self.db.transaction() as tx:
                for _seq, frame in batch:
                    await self._event(tx, frame, indexed_at, fetch, refresh, changed)
                await tx.execute(
                    "INSERT INTO relay_cursor (relay, seq) VALUES (?, ?) "
                    "ON CONFLICT (relay) DO UPDATE SET seq = excluded.seq",
                    relay, batch[-1][0],
                )  # fmt: skip
                await self.announce(tx, changed)
        except BaseException:
            # The cached states may hold changes that were rolled back.
            self.states.clear()
            raise
        self.cache.invalidate(changed)
        for did in fetch:
            self._spawn(self._backfill(did), f"backfill {did}")
        for did in refresh:
            self._spawn(self._refresh_identity(did), f"identity {did}")

    async def _event(
        self,
        tx: Executor,
        frame: Frame,
        indexed_at: str,
        fetch: list[str],
        refresh: list[str],
        changed: set[str],
    ) -> None:
        body = frame.body
        did = body.get("repo") if frame.t in ("#commit", "#sync") else body.get("did")
        if not isinstance(did, str):
            return
        EVENTS.labels(frame.t or "").inc()
        if frame.t == "#commit":
            await self._commit(tx, did, body, indexed_at, fetch, refresh, changed)
        elif frame.t == "#identity":
            if await self._state(tx, did) is None:
                await self._new_actor(tx, did, None, indexed_at)
            refresh.append(did)
        elif frame.t == "#account":
            await self._account(tx, did, body, indexed_at, changed)
        elif frame.t == "#sync":
            state = await self._state(tx, did)
            rev = body.get("rev")
            if state is None or (isinstance(rev, str) and rev != state.rev):
                self._want_fetch(did, fetch)

    def _hold(self, did: str, body: dict[str, Any]) -> None:
        """Keep a commit for after the account's fetch, within `MAX_WAITING_BYTES`."""
        if did in self.overflowed:
            return
        size = self.waiting_bytes.get(did, 0) + len(body.get("blocks") or b"") + 256
        if size > MAX_WAITING_BYTES:
            self.waiting[did].clear()
            self.waiting_bytes.pop(did, None)
            self.overflowed.add(did)
            return
        self.waiting_bytes[did] = size
        self.waiting[did].append(body)

    def _want_fetch(self, did: str, fetch: list[str]) -> None:
        if did not in self.waiting:
            self.waiting[did] = []
            fetch.append(did)

    async def _new_actor(self, tx: Executor, did: str, rev: str | None, indexed_at: str) -> None:
        await tx.execute(
            "INSERT INTO actor (did, rev, status, indexed_at) VALUES (?, ?, 'active', ?) "
            "ON CONFLICT (did) DO NOTHING",
            did, rev, indexed_at,
        )  # fmt: skip
        self.states[did] = ActorState(rev, "active")

    async def _commit(
        self,
        tx: Executor,
        did: str,
        body: dict[str, Any],
        indexed_at: str,
        fetch: list[str],
        refresh: list[str],
        changed: set[str],
    ) -> None:
        rev, since = body.get("rev"), body.get("since")
        if not isinstance(rev, str):
            return
        if did in self.waiting:
            self._hold(did, body)
            return
        state = await self._state(tx, did)
        if state is None and since is None:
            await self._new_actor(tx, did, None, indexed_at)
            refresh.append(did)
            state = self.states[did]
        if state is None or body.get("tooBig") or (since is not None and since != state.rev):
            if state is not None and state.rev is not None and rev <= state.rev:
                return  # already indexed (a replay after moving between relays)
            self._want_fetch(did, fetch)
            self._hold(did, body)
            return
        if state.rev is not None and rev <= state.rev:
            return
        if state.status == "active":
            await self._apply_ops(tx, did, body, indexed_at, changed)
        state.rev = rev
        await tx.execute("UPDATE actor SET rev = ? WHERE did = ?", rev, did)

    async def _apply_ops(
        self, tx: Executor, did: str, body: dict[str, Any], at: str, changed: set[str]
    ) -> None:
        ops = body.get("ops")
        blocks_car = body.get("blocks")
        if not isinstance(ops, list):
            return
        blocks: dict[CID, bytes] = {}
        if isinstance(blocks_car, bytes) and blocks_car:
            try:
                blocks = dict(CarReader(blocks_car, verify=False))
            except CoreError as exc:
                log_event(log, "commit blocks unreadable", logging.WARNING, did=did, error=str(exc))
                return
        for op in ops:
            if not isinstance(op, dict) or not isinstance(op.get("path"), str):
                continue
            collection, _, rkey = op["path"].partition("/")
            if collection not in INDEXED:
                continue
            uri = f"at://{did}/{collection}/{rkey}"
            action, cid = op.get("action"), op.get("cid")
            if action == "delete":
                await delete_record(tx, uri, collection, changed)
            elif action in ("create", "update") and isinstance(cid, CID) and cid in blocks:
                await self._index(tx, uri, cid, collection, rkey, blocks[cid], at, changed)

    async def _index(
        self,
        tx: Executor,
        uri: str,
        cid: CID,
        collection: str,
        rkey: str,
        block: bytes,
        indexed_at: str,
        changed: set[str],
    ) -> None:
        try:
            record = cbor.decode(block)
            self.catalog.validate_record(collection, record, rkey=rkey)
            value = cbor.to_json(record)
        except CoreError:
            INVALID.inc()
            return
        await index_record(tx, uri, str(cid), collection, value, indexed_at, changed)

    async def _account(
        self, tx: Executor, did: str, body: dict[str, Any], at: str, changed: set[str]
    ) -> None:
        active = body.get("active")
        status = body.get("status")
        if active is True:
            status = "active"
        elif not isinstance(status, str):
            status = "deactivated"
        state = await self._state(tx, did)
        if state is None:
            await self._new_actor(tx, did, None, at)
            state = self.states[did]
        state.status = status
        changed.add(did)
        await tx.execute("UPDATE actor SET status = ? WHERE did = ?", status, did)
        if status == "deleted":
            await self._purge(tx, did, changed)
            state.rev = None
            await tx.execute("UPDATE actor SET rev = NULL WHERE did = ?", did)

    async def _purge(self, tx: Executor, did: str, changed: set[str]) -> None:
        for uri, collection in await tx.fetch(
            "SELECT uri, collection FROM record WHERE did = ?", did
        ):
            await delete_record(tx, uri, collection, changed)

    async def _identity(self, did: str) -> tuple[str, str | None]:
        """The account's handle (if it points back to the account) and PDS, resolved afresh;
        raises `IdentityError`."""
        assert self.resolver is not None
        self.resolver.forget(did)
        identity = await self.resolver.resolve(did)
        pds = identity.document.pds_endpoint
        handle = identity.handle
        claimed = identity.document.handle
        if handle == INVALID_HANDLE and self.dev and claimed and pds:
            handle = await self._handle_from_pds(pds, claimed, did)
        return handle, pds

    async def _refresh_identity(self, did: str) -> None:
        """Record the account's PDS and its handle."""
        if self.resolver is None or self.session is None:
            return
        try:
            handle, pds = await self._identity(did)
        except IdentityError as exc:
            log_event(log, "identity unresolved", logging.WARNING, did=did, error=str(exc))
            return
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE actor SET handle = ?, pds = ? WHERE did = ?", handle, pds, did)
            await self.announce(tx, [did])
        self.cache.invalidate([did])

    async def _handle_from_pds(self, pds: str, handle: str, did: str) -> str:
        """In development, a loopback handle has neither DNS nor https: ask its own PDS."""
        assert self.session is not None
        try:
            async with self.session.get(
                f"{pds}/xrpc/com.atproto.identity.resolveHandle",
                params={"handle": handle},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                answer = await response.json() if response.status == 200 else {}
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return INVALID_HANDLE
        return handle if isinstance(answer, dict) and answer.get("did") == did else INVALID_HANDLE

    async def _backfill(self, did: str) -> None:
        backoff = Backoff(base=2.0, cap=60.0)
        try:
            for attempt in range(1, BACKFILL_ATTEMPTS + 1):
                try:
                    async with self.limit:
                        await self.backfill(did)
                    BACKFILLS.labels("indexed").inc()
                    return
                except (RepoFetchFailed, IdentityError) as e:
                    log_event(
                        log, "repository fetch failed", logging.WARNING, did=did,
                        attempt=attempt, error=str(e) or type(e).__name__,
                    )  # fmt: skip
                    await asyncio.sleep(backoff.next_delay())
            BACKFILLS.labels("failed").inc()
            await self._refresh_identity(did)
        finally:
            self.waiting_bytes.pop(did, None)
            if did in self.overflowed:
                # Commits were dropped while waiting: only a fetch made after them has them.
                self.overflowed.discard(did)
                self.waiting[did] = []
                self._spawn(self._backfill(did), f"backfill {did}")
            else:
                pending = self.waiting.pop(did, [])
                if pending:
                    await self._replay(did, pending)

    async def backfill(self, did: str) -> None:
        """Index an account's whole repository from its PDS, replacing what was indexed."""
        if self.resolver is None or self.session is None:
            raise RepoFetchFailed("no network: the indexer was given no resolver")
        handle, pds = await self._identity(did)
        if pds is None:
            raise RepoFetchFailed(f"{did} names no PDS")
        repo = await fetch_repo(self.session, pds, did, timeout=120)
        records = [
            (path, cid, repo.store.get(cid))
            for path, cid in repo.records()
            if path.partition("/")[0] in INDEXED
        ]
        indexed_at = iso_now()
        changed = {did}
        async with self.db.transaction() as tx:
            await self._purge(tx, did, changed)
            for path, cid, block in records:
                collection, _, rkey = path.partition("/")
                if block is not None:
                    uri = f"at://{did}/{path}"
                    await self._index(tx, uri, cid, collection, rkey, block, indexed_at, changed)
            await tx.execute(
                "INSERT INTO actor (did, handle, pds, rev, status, indexed_at) "
                "VALUES (?, ?, ?, ?, 'active', ?) ON CONFLICT (did) DO UPDATE SET "
                "handle = excluded.handle, pds = excluded.pds, rev = excluded.rev",
                did, handle, pds, repo.rev, indexed_at,
            )  # fmt: skip
            await self.announce(tx, changed)
        self.cache.invalidate(changed)
        state = self.states.setdefault(did, ActorState(None, "active"))
        state.rev = repo.rev
        log_event(log, "repository indexed", did=did, rev=repo.rev, records=len(records))

    async def _replay(self, did: str, commits: Iterable[dict[str, Any]]) -> None:
        """Commits that arrived during a fetch: those newer than it, in order."""
        changed: set[str] = set()
        async with self.db.transaction() as tx:
            state = await self._state(tx, did)
            for body in commits:
                rev = body.get("rev")
                if state is None or state.rev is None or not isinstance(rev, str):
                    break
                if rev > state.rev and state.status == "active":
                    await self._apply_ops(tx, did, body, iso_now(), changed)
                    state.rev = rev
            if state is not None:
                await tx.execute("UPDATE actor SET rev = ? WHERE did = ?", state.rev, did)
            await self.announce(tx, changed)
        self.cache.invalidate(changed)
