"""The directory's write path and its live event feed.

Submissions queue up for a single writer, which validates and stores them in batches: one
transaction and one fsync acknowledge every operation in the batch, and because there is only
one writer, two operations for the same DID can never race past each other's `prev` check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import Counter, Gauge

from strata.core.plc import (
    MisorderedOperation,
    PlcError,
    assure_valid_next_op,
    check_limits,
    check_rate_limit,
    operation_cid,
)
from strata.core.plc.operation import Operation
from strata.net.logs import log_event
from strata.plc.store import Accepted, PlcStore

log = logging.getLogger("strata.plc")

MAX_BATCH: Final = 512
STREAM_BUFFER: Final = 500

OPERATIONS = Counter(
    "strata_plc_operations_total",
    "Operations submitted, by source and outcome",
    ["source", "outcome"],
)
SUBSCRIBERS = Gauge("strata_plc_stream_subscribers", "Open /export/stream connections")


@dataclass
class _Submission:
    did: str
    # None: only move the mirror cursor past an operation that failed verification.
    op: Operation | None
    # Set when mirroring: the source's acceptance time and the cursor to save with the op.
    created_at: int | None
    cursor: tuple[str, str] | None
    future: asyncio.Future[Accepted | None]


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
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task."""
        self._writer = asyncio.create_task(self._write_loop())

    async def stop(self) -> None:
        """Stop the writer; queued submissions fail."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
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
                results = await asyncio.to_thread(self._write_batch, batch)
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

    def _write_batch(self, batch: list[_Submission]) -> list[Accepted | Exception | None]:
        conn = self.store.writer
        results: list[Accepted | Exception | None] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for item in batch:
                try:
                    results.append(self._write_one(item))
                except PlcError as exc:
                    source = "client" if item.cursor is None else "mirror"
                    OPERATIONS.labels(source, "rejected").inc()
                    if item.cursor is not None:
                        # A forged operation upstream is skipped, not retried forever.
                        self.store.save_cursor(conn, *item.cursor)
                    results.append(exc)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return results

    def _write_one(self, item: _Submission) -> Accepted | None:
        conn = self.store.writer
        if item.op is None:
            assert item.cursor is not None
            self.store.save_cursor(conn, *item.cursor)
            return None
        cid = str(operation_cid(item.op))
        mirrored = item.cursor is not None
        full_log = self.store.ops_for_did(item.did, include_nullified=True, conn=conn)
        if any(op.cid == cid for op in full_log):
            if item.cursor is None:
                raise MisorderedOperation()
            self.store.save_cursor(conn, *item.cursor)
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
        seq = self.store.insert(conn, item.did, cid, item.op, created_at, nxt.nullified)
        if item.cursor is not None:
            self.store.save_cursor(conn, *item.cursor)
        OPERATIONS.labels("mirror" if mirrored else "client", "accepted").inc()
        return Accepted(seq, item.did, cid, item.op, created_at)
