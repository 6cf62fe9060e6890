"""The directory's write path and its live event feed.

Submissions queue up for a single writer per process, which validates and stores them in
batches: one transaction and one commit acknowledge every operation in the batch. The batch's
DIDs are locked and their logs read at the start of the transaction, every operation is checked
against those logs (and against the operations accepted before it in the same batch), and only
then are the accepted ones numbered and inserted. Two operations for one DID therefore never
both pass the `prev` check, whether they meet in one process's queue or in two processes
sharing a Postgres database.

Subscribers of `/export/stream` are fed in `seq` order: on SQLite by the writer after each
commit (it is the only writer), on Postgres by a follower that reads what any process committed,
woken by a notification (`LISTEN`) and, should that connection be lost, by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

import asyncpg
from prometheus_client import Counter, Gauge

from strata.core.plc import (
    IndexedOp,
    MisorderedOperation,
    PlcError,
    assure_valid_next_op,
    check_limits,
    check_rate_limit,
    operation_cid,
)
from strata.core.plc.operation import Operation
from strata.database import Executor, Listener
from strata.net.logs import log_event
from strata.plc.store import Accepted, NewOperation, PlcStore

log = logging.getLogger("strata.plc")

MAX_BATCH: Final = 512
STREAM_BUFFER: Final = 500
FOLLOW_PAGE: Final = 500
"""Operations the Postgres follower reads at a time."""
POLL_INTERVAL: Final = 1.0
"""Seconds between reads of the log by the Postgres follower when no notification comes."""

OPERATIONS = Counter(
    "strata_plc_operations_total",
    "Operations submitted, by source and outcome",
    ["source", "outcome"],
)
SUBSCRIBERS = Gauge(
    "strata_plc_stream_subscribers", "Open /export/stream connections",
    multiprocess_mode="livesum",
)  # fmt: skip


@dataclass
class _Submission:
    did: str
    # None: only move the mirror cursor past an operation that failed verification.
    op: Operation | None
    # Set when mirroring: the source's acceptance time and the cursor to save with the op.
    created_at: int | None
    cursor: tuple[str, str] | None
    future: asyncio.Future[Accepted | None]


@dataclass
class _Batch:
    """What checking a batch decided, to be written once the checks are done."""

    logs: dict[str, list[IndexedOp]]
    inserts: list[NewOperation] = field(default_factory=list)
    nullify: dict[str, list[str]] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class Subscription:
    """A live feed of accepted operations; `overflowed` once the consumer fell too far behind."""

    queue: asyncio.Queue[Accepted] = field(default_factory=lambda: asyncio.Queue(STREAM_BUFFER))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Directory:
    """Validates and stores operations, and feeds subscribers."""

    def __init__(self, store: PlcStore, clock_ms: Callable[[], int] | None = None) -> None:
        self.store = store
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.subscribers: set[Subscription] = set()
        self._queue: asyncio.Queue[_Submission] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the writer, and on Postgres the follower of other processes' writes (from the
        current end of the log, read before this returns, so no subscriber misses an
        operation committed in between)."""
        self._tasks.append(asyncio.create_task(self._write_loop()))
        if self.store.shared:
            last = await self.store.last_seq()
            self._tasks.append(asyncio.create_task(self._follow(last)))

    async def stop(self) -> None:
        """Stop the writer (and the follower); queued submissions fail."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("directory is shutting down"))

    async def submit(self, did: str, op: Operation) -> Accepted:
        """Validate and durably store a client's operation; raises `PlcError` if refused."""
        accepted = await self._enqueue(did, op, None, None)
        assert accepted is not None  # only mirrored operations can be duplicates
        return accepted

    def ingest(
        self, did: str, op: Operation, created_at: int, cursor: tuple[str, str]
    ) -> asyncio.Future[Accepted | None]:
        """Queue an operation read from another directory's export, verified like any other.

        The future resolves to None when the operation is already stored, and fails with a
        `PlcError` when it is invalid. Operations are applied in the order they are queued, and
        the mirror cursor is saved in the same transaction, so a crash never skips an operation.
        """
        return self._enqueue(did, op, created_at, cursor)

    def skip(self, source: str, cursor: str) -> asyncio.Future[Accepted | None]:
        """Queue a cursor move past an operation that was refused before reaching the log."""
        return self._enqueue("", None, None, (source, cursor))

    def _enqueue(
        self, did: str, op: Operation | None, created_at: int | None, cursor: tuple[str, str] | None
    ) -> asyncio.Future[Accepted | None]:
        future: asyncio.Future[Accepted | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Submission(did, op, created_at, cursor, future))
        return future

    def subscribe(self) -> Subscription:
        """Start receiving every operation accepted from now on."""
        sub = Subscription()
        self.subscribers.add(sub)
        SUBSCRIBERS.set(len(self.subscribers))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription."""
        self.subscribers.discard(sub)
        SUBSCRIBERS.set(len(self.subscribers))

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._write_batch(batch)
            except Exception as exc:
                log_event(log, "write batch failed", logging.ERROR, size=len(batch), error=str(exc))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            accepted = []
            for item, result in zip(batch, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
                    if result is not None:
                        accepted.append(result)
            if not self.store.shared:
                self._publish(accepted)

    def _publish(self, accepted: list[Accepted]) -> None:
        for sub in list(self.subscribers):
            for event in accepted:
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    sub.overflowed.set()
                    self.unsubscribe(sub)
                    break

    async def _follow(self, last: int) -> None:
        """Publish every operation committed after `last`, by any process, in seq order."""
        wake = asyncio.Event()
        listener: Listener | None = None
        try:
            while True:
                try:
                    if listener is None or listener.is_closed():
                        listener = await self.store.listen(wake.set)
                    wake.clear()
                    last = await self._catch_up(last)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log_event(log, "following the log failed", logging.WARNING, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await wake.wait()
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _catch_up(self, last: int) -> int:
        """Publish what any process committed after `last`; return the seq reached."""
        if not self.subscribers:
            # Nobody to feed: move on without reading the operations, unless somebody
            # subscribed meanwhile (their backfill may have ended before this end).
            end = await self.store.last_seq()
            if not self.subscribers:
                return end
        while page := await self.store.export_seq(last, FOLLOW_PAGE):
            self._publish(page)
            last = page[-1].seq
        return last

    async def _write_batch(self, batch: list[_Submission]) -> list[Accepted | Exception | None]:
        # On SQLite the whole transaction runs on a thread, checks included: signature checks
        # and SQLite let go of the interpreter lock, so the loop goes on serving requests.
        return await self.store.db.run_transaction(lambda tx: self._write(tx, batch))

    async def _write(
        self, tx: Executor, batch: list[_Submission]
    ) -> list[Accepted | Exception | None]:
        dids = {item.did for item in batch if item.op is not None}
        await self.store.lock(tx, dids)
        plan = _Batch(await self.store.logs(tx, dids))
        outcomes = [self._outcome(item, plan) for item in batch]
        seqs: dict[NewOperation, int] = {}
        if plan.inserts:
            seqs = dict(zip(plan.inserts, await self.store.insert(tx, plan.inserts), strict=True))
            await self.store.announce(tx)
        for did, cids in plan.nullify.items():
            await self.store.nullify(tx, did, cids)
        for source, cursor in plan.cursors.items():
            await self.store.save_cursor(tx, source, cursor)
        return [
            Accepted(seqs[o], o.did, o.cid, o.operation, o.created_at)
            if isinstance(o, NewOperation)
            else o
            for o in outcomes
        ]

    def _outcome(self, item: _Submission, plan: _Batch) -> NewOperation | Exception | None:
        try:
            outcome: NewOperation | Exception | None = self._check(item, plan)
        except PlcError as exc:
            OPERATIONS.labels("client" if item.cursor is None else "mirror", "rejected").inc()
            outcome = exc
        if item.cursor is not None:
            # A forged operation upstream is skipped, not retried forever.
            plan.cursors[item.cursor[0]] = item.cursor[1]
        return outcome

    def _check(self, item: _Submission, plan: _Batch) -> NewOperation | None:
        """Check one operation against its DID's log as the batch has it so far; if it is
        accepted, add it to that log and to the batch's writes."""
        if item.op is None:
            return None
        cid = str(operation_cid(item.op))
        mirrored = item.cursor is not None
        full_log = plan.logs[item.did]
        if any(op.cid == cid for op in full_log):
            if not mirrored:
                raise MisorderedOperation()
            OPERATIONS.labels("mirror", "duplicate").inc()
            return None
        ops = [op for op in full_log if not op.nullified]
        if item.created_at is None:
            # Strictly increasing per DID, so that log order and createdAt order agree.
            created_at = max(self.clock_ms(), ops[-1].created_at_ms + 1 if ops else 0)
        else:
            created_at = item.created_at
        if not mirrored:
            check_limits(item.op)
        nxt = assure_valid_next_op(item.did, ops, item.op, created_at)
        if not mirrored and not nxt.nullified:
            check_rate_limit(ops, created_at)
        if nxt.nullified:
            self._nullify(item.did, set(nxt.nullified), plan)
        insert = NewOperation(item.did, cid, item.op, created_at)
        plan.inserts.append(insert)
        full_log.append(IndexedOp(item.did, item.op, cid, False, created_at))
        OPERATIONS.labels("mirror" if mirrored else "client", "accepted").inc()
        return insert

    @staticmethod
    def _nullify(did: str, cids: set[str], plan: _Batch) -> None:
        """Nullify `cids` of `did`: in the batch's copy of the log, in the batch's own inserts
        when they are among them, and in the database for the rest."""
        entries = plan.logs[did]
        entries[:] = [replace(op, nullified=True) if op.cid in cids else op for op in entries]
        pending = set()
        for insert in plan.inserts:
            if insert.did == did and insert.cid in cids:
                insert.nullified = True
                pending.add(insert.cid)
        stored = [cid for cid in cids if cid not in pending]
        if stored:
            plan.nullify.setdefault(did, []).extend(stored)
