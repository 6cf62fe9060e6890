"""The relay's own firehose: events numbered by the database, stored in a replay window,
published to consumers once durable.

Events are accepted into the store's batch; the relay's writer commits a batch in one
transaction (group commit), which numbers its events, and only then are they published. So a
consumer never sees an event that a crash could take back, and one fsync serves many events.
On SQLite one process writes and publishes each batch it commits. On Postgres every process
publishes what any process committed, by tailing the events table in `seq` order: woken by a
notification at each commit, and polling as well, so a lost listening connection only delays
publication.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from prometheus_client import Counter, Gauge

from strata.database import Listener
from strata.net.firehose import WINDOW_BYTES, Broadcaster
from strata.net.logs import log_event
from strata.relay.store import CHANNEL, RelayStore

log = logging.getLogger("strata.relay.events")

EMITTED = Counter("strata_relay_events_emitted_total", "Events sequenced by the relay", ["type"])
LAST_SEQ = Gauge("strata_relay_last_seq", "The relay's newest published sequence number")

TAIL_PAGE: Final = 1000
POLL_INTERVAL: Final = 1.0
"""Seconds between reads of the events table when no notification came (and between attempts
to listen again when the listening connection is lost)."""


class RelayEvents:
    """Sequencing, storage and publication of the relay's events."""

    def __init__(
        self,
        store: RelayStore,
        last_seq: int,
        window_bytes: int = WINDOW_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.broadcaster = Broadcaster(window_bytes)
        self._published = last_seq
        self._wake = asyncio.Event()
        LAST_SEQ.set(self._published)

    @property
    def last_seq(self) -> int:
        return self._published

    async def oldest_seq(self) -> int | None:
        return await self.store.oldest_seq()

    async def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return await self.store.events_after(after, limit)

    @property
    def pending(self) -> int:
        """Events accepted but not yet committed."""
        return self.store.pending_events

    def append(self, did: str, event_type: str, body: dict[str, Any]) -> None:
        """Accept an event into the next batch (its `seq` is given when the batch commits)."""
        self.store.append_event(did, event_type, body, int(self.clock() * 1000))

    async def commit(self) -> None:
        """Commit the store's batch in one transaction, which numbers its events; then publish
        them (on Postgres, through the table, as every process does)."""
        store, writer = self.store, self.store.writer
        if writer is None or not store.dirty:
            return
        batch = store.take_batch()
        try:
            frames = await writer.run_transaction(lambda tx: store.write(tx, batch, notify=True))
        except BaseException:
            store.dropped()
            raise
        store.committed()
        for event_type, count in collections.Counter(e.event_type for e in batch.events).items():
            EMITTED.labels(event_type).inc(count)
        if store.shared:
            self.wake()
        else:
            self.publish(frames)

    def publish(self, frames: Sequence[tuple[int, bytes]]) -> None:
        """Hand committed events, in seq order, to the consumers (those already published are
        skipped)."""
        fresh = [f for f in frames if f[0] > self._published]
        if not fresh:
            return
        self._published = fresh[-1][0]
        LAST_SEQ.set(self._published)
        self.broadcaster.publish(fresh)

    def wake(self) -> None:
        """Read the events table now: a batch was committed (here or in another process)."""
        self._wake.set()

    async def follow(self) -> None:
        """Publish, forever, what any process commits (Postgres)."""
        listener: Listener | None = None
        try:
            while True:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                self._wake.clear()
                try:
                    while page := await self.store.events_after(self._published, TAIL_PAGE):
                        self.publish(page)
                except Exception as exc:
                    # The database is away: the next round reads again.
                    log_event(log, "cannot read events", logging.WARNING, error=str(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await self._wake.wait()
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _listen(self) -> Listener | None:
        try:
            return await self.store.listen(CHANNEL, self.wake)
        except Exception as exc:
            log_event(log, "cannot listen for events; polling", logging.WARNING, error=str(exc))
            return None
