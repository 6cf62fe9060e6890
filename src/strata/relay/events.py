"""The relay's own firehose: events numbered by the relay, stored in a replay window on disk,
published to consumers once durable.

Events are written as they are accepted, into the store's open transaction; `commit` makes a
batch durable in one fsync (group commit) and only then hands it to the broadcaster. So a
consumer never sees an event that a crash could take back, and one fsync serves many events.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from strata.core.frames import message_frame
from strata.net.firehose import WINDOW_BYTES, Broadcaster
from strata.relay.store import RelayStore

EMITTED = Counter("strata_relay_events_emitted_total", "Events sequenced by the relay", ["type"])
LAST_SEQ = Gauge("strata_relay_last_seq", "The relay's newest published sequence number")


class RelayEvents:
    """Sequencing, storage and publication of the relay's events."""

    def __init__(
        self,
        store: RelayStore,
        window_bytes: int = WINDOW_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clock = clock
        self.broadcaster = Broadcaster(window_bytes)
        self._published = store.last_seq()
        self._next = self._published + 1
        self._pending: list[tuple[int, bytes]] = []
        self._pending_types: list[str] = []
        self.dirty = False
        LAST_SEQ.set(self._published)

    @property
    def last_seq(self) -> int:
        return self._published

    def oldest_seq(self) -> int | None:
        return self.store.oldest_seq()

    def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return self.store.replay(after, limit)

    @property
    def pending(self) -> int:
        """Events accepted but not yet durable."""
        return len(self._pending)

    def touch(self) -> None:
        """Note that the open transaction has something to commit."""
        self.dirty = True

    def append(self, did: str, event_type: str, body: dict[str, Any]) -> int:
        """Sequence an event (its `seq` is set here) into the open transaction."""
        seq = self._next
        self._next += 1
        frame = message_frame(event_type, {**body, "seq": seq})
        self.store.append_event(seq, did, event_type, frame, int(self.clock() * 1000))
        self._pending.append((seq, frame))
        self._pending_types.append(event_type)
        self.dirty = True
        return seq

    def commit(self) -> None:
        """Make everything written so far durable, then publish the new events."""
        self.store.commit()
        self.dirty = False
        if not self._pending:
            return
        batch, types = self._pending, self._pending_types
        self._pending, self._pending_types = [], []
        self._published = batch[-1][0]
        LAST_SEQ.set(self._published)
        for event_type, count in collections.Counter(types).items():
            EMITTED.labels(event_type).inc(count)
        self.broadcaster.publish(batch)
