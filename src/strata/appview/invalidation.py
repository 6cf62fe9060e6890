"""The hot-path cache kept right across worker processes (`strata appview --workers N`).

One worker indexes; every worker serves reads from the shared Postgres through a cache of its
own, and may write a viewer's bookmarks, whose counts are cached too. Whoever writes names the
keys its transaction changed (record URIs, account DIDs) in notifications sent within that
transaction, so that Postgres delivers them when, and only if, it commits. Every worker
listens, and drops the keys the others named under the cache's epoch rule (its own changes it
dropped itself). A notification carries at most `PAYLOAD_BYTES` of keys; a change too large for
`MAX_NOTICES` of them is announced as `EVERYTHING`, and each listener clears its cache.

While a worker is not listening (before it first connects, and from the moment its listening
connection fails until it listens again), notifications would be missed: its cache is paused,
so that it serves no stale answer, only slower ones.

The indexing worker also says every `STATUS_INTERVAL` how long the index has gone without a
relay, so that every worker marks its answers stale as the indexing one would; a worker that
hears nothing counts the silence as staleness too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Final

import asyncpg

from strata.appview.cache import HotCache
from strata.database import Database, Executor, Listener, PostgresDatabase
from strata.net.logs import log_event
from strata.resilience.backoff import Backoff

log = logging.getLogger("strata.appview.invalidation")

CHANNEL: Final = "strata_appview_cache"
PAYLOAD_BYTES: Final = 7900
"""Bytes of keys in one notification (Postgres refuses payloads of 8000 bytes or more, and the
sender's name comes first)."""
MAX_NOTICES: Final = 16
"""Notifications one transaction may send; a larger change clears every cache instead."""
EVERYTHING: Final = "*"
"""The payload that drops every entry (no key is a lone star)."""
STATUS: Final = "@"
"""The first character of a staleness report (no key starts with it)."""
STATUS_INTERVAL: Final = 1.0
"""Seconds between the indexing worker's staleness reports."""
CHECK_INTERVAL: Final = 5.0
"""Seconds between checks that the listening connection still answers."""
CHECK_TIMEOUT: Final = 5.0


def notices(keys: Iterable[str]) -> list[str]:
    """The payloads naming `keys` (one a line, each payload under `PAYLOAD_BYTES`), or
    `[EVERYTHING]` when they would take more than `MAX_NOTICES`."""
    payloads: list[str] = []
    lines: list[str] = []
    size = 0
    for key in sorted(set(keys)):
        length = len(key.encode()) + 1
        if length > PAYLOAD_BYTES or "\n" in key:
            return [EVERYTHING]
        if size + length > PAYLOAD_BYTES:
            payloads.append("\n".join(lines))
            lines, size = [], 0
        lines.append(key)
        size += length
    if lines:
        payloads.append("\n".join(lines))
    return payloads if len(payloads) <= MAX_NOTICES else [EVERYTHING]


class Announcer:
    """Tells the other workers what a transaction changed; with one worker, nobody."""

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self.origin = secrets.token_hex(6)
        """This process's name in its notifications, which its own follower skips."""

    async def __call__(self, tx: Executor, keys: Iterable[str]) -> None:
        """Tell the other workers, once `tx` commits, that it changed `keys`."""
        if self.shared:
            for payload in notices(keys):
                await tx.execute("SELECT pg_notify(?, ?)", CHANNEL, f"{self.origin}\n{payload}")

    async def report(self, db: Database, staleness: Callable[[], float]) -> None:
        """Say how stale the index is (`staleness()` seconds) every `STATUS_INTERVAL`, until
        cancelled."""
        while True:
            try:
                payload = f"{self.origin}\n{STATUS}{staleness():.3f}"
                await db.execute("SELECT pg_notify(?, ?)", CHANNEL, payload)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log_event(log, "staleness report failed", logging.WARNING, error=str(exc))
            await asyncio.sleep(STATUS_INTERVAL)


def apply_notice(cache: HotCache, origin: str, payload: str) -> None:
    """Drop what one notification names, unless it comes from `origin` (this process)."""
    sender, _, keys = payload.partition("\n")
    if sender == origin or not keys or keys.startswith(STATUS):
        return
    if keys == EVERYTHING:
        cache.clear()
    else:
        cache.invalidate(keys.split("\n"))


class CacheFollower:
    """Keeps a worker's cache in step with the other workers' commits."""

    def __init__(self, db: PostgresDatabase, cache: HotCache, origin: str) -> None:
        self.db = db
        self.cache = cache
        self.origin = origin
        """The name of this process's own notifications."""
        self.task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while notifications arrive (and the cache is in use)."""
        self._reported = (0.0, time.monotonic())
        """The indexing worker's last staleness report, and when it arrived."""

    def start(self) -> None:
        self.cache.pause()
        self.task = asyncio.create_task(self._follow(), name="appview cache follower")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _follow(self) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        while True:
            try:
                await self._listen(backoff)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log_event(
                    log, "cache drops lost: the cache is paused", logging.WARNING,
                    error=str(exc) or type(exc).__name__,
                )  # fmt: skip
            await asyncio.sleep(backoff.next_delay())

    async def _listen(self, backoff: Backoff) -> None:
        """Follow the notifications on one connection, for as long as it lasts."""
        lost = asyncio.Event()
        listener: Listener | None = None
        try:
            listener = await self.db.listen(CHANNEL, self._notified)
            listener.add_termination_listener(lambda _conn: self._lost(lost))
            # Listening from here: whatever commits next is announced to this worker.
            self.cache.resume()
            self.listening.set()
            backoff.reset()
            log_event(log, "following cache drops")
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CHECK_INTERVAL):
                        await lost.wait()
                # A connection can be gone without a word (a host or a network down).
                await listener.execute("SELECT 1", timeout=CHECK_TIMEOUT)
            raise ConnectionError("the listening connection closed")
        finally:
            self.listening.clear()
            self.cache.pause()
            if listener is not None and not listener.is_closed():
                with contextlib.suppress(Exception):
                    await listener.close()

    def _lost(self, lost: asyncio.Event) -> None:
        # At once, not at the next check: drops may already be missed.
        self.cache.pause()
        lost.set()

    def staleness(self) -> float:
        """Seconds the index may have gone without a relay: as last reported, and since."""
        reported, at = self._reported
        return reported + max(0.0, time.monotonic() - at - STATUS_INTERVAL)

    def _notified(self, payload: str) -> None:
        _, _, body = payload.partition("\n")
        if body.startswith(STATUS):
            with contextlib.suppress(ValueError):
                self._reported = (float(body[1:]), time.monotonic())
            return
        apply_notice(self.cache, self.origin, payload)
