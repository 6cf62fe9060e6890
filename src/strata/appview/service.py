"""The AppView as a running service: its index, its relay subscription and its identity.

Requests are served on the server's event loop, reading the index through a pool (reader
threads on SQLite, connections on Postgres). The indexer runs on a thread and event loop of its
own, with its own connections: a batch of events is written in one transaction, and neither the
transaction nor the work of decoding and checking the events ever holds up a request. It tells
the hot-path cache what each transaction changed.

With several worker processes over one Postgres database (`--workers`), only the first indexes,
and all serve reads; each tells the others' caches what its transactions changed
(`strata.appview.invalidation`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from strata.appview.cache import DEFAULT_MIB, HotCache
from strata.appview.context import AppContext
from strata.appview.indexer import Indexer
from strata.appview.invalidation import Announcer, CacheFollower
from strata.appview.labels import LabelSubscriber
from strata.appview.schema import MIGRATIONS
from strata.database import Database, PostgresDatabase, migrate, open_database
from strata.identity import IdentityResolver
from strata.identity.service_did import service_did, service_document
from strata.net.logs import log_event
from strata.net.public_fetch import outward_session
from strata.net.subscriber import RelaySubscriber

log = logging.getLogger("strata.appview")

SWITCH_INTERVAL: Final = 0.0005
"""Seconds a thread holds the interpreter lock while another waits for it."""
INDEXER_CONNECTIONS: Final = 2
"""Reader threads or connections of the indexer (its writes have one connection of their own)."""


@dataclass(frozen=True)
class AppViewConfig:
    plc_urls: tuple[str, ...]
    relays: tuple[str, ...]
    public_url: str
    database_url: str | None = None
    dev: bool = False
    feed_fallbacks: tuple[tuple[str, str], ...] = ()
    """(feed, fallback feed) pairs: the fallback is served when the feed's generator fails."""
    serve_stale_for: float = 6 * 3600.0
    database_pool_size: int | None = None
    """Reader threads (SQLite) or connections (Postgres) serving requests (None: the
    engine's default)."""
    cache_mib: int = DEFAULT_MIB
    """The hot-path cache's bound."""
    labelers: tuple[str, ...] = ()
    """Labelers (DIDs) whose labels are read and carried by default."""
    workers: int = 1
    """Processes serving this index (more than one only on Postgres)."""
    indexing: bool = True
    """Whether this process follows the relays and labelers (one of the workers does)."""

    @property
    def did(self) -> str:
        return service_did(self.public_url, self.dev)


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers={"User-Agent": "strata-appview"}
    )


class IndexingThread:
    """The relay subscription, the labelers' streams and the indexer, on a thread and event
    loop of their own."""

    def __init__(
        self, config: AppViewConfig, data_dir: Path, cache: HotCache, announce: Announcer
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.cache = cache
        self.announce = announce
        self.indexer: Indexer | None = None
        self.subscriber: RelaySubscriber | None = None
        self.label_subscribers: list[LabelSubscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._reporting: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="appview-indexer", daemon=True)

    async def start(self) -> None:
        """Open the indexer's database and start reading relays; raises what opening raised."""
        # The indexer gives up the interpreter lock at every statement; waiting the default
        # 5 ms to get it back from a busy request loop would starve it.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread.start()
        await asyncio.to_thread(self._started.wait)
        if self._error is not None:
            raise self._error

    async def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        db: Database | None = None
        session: aiohttp.ClientSession | None = None
        outward: aiohttp.ClientSession | None = None
        try:
            db = await open_database(
                self.config.database_url, self.data_dir / "appview.sqlite", INDEXER_CONNECTIONS
            )
            session = _session()
            outward = outward_session(self.config.dev)
            resolver = IdentityResolver(
                session, self.config.plc_urls, dev=self.config.dev, web_session=outward
            )
            self.indexer = Indexer(
                db, resolver, outward, dev=self.config.dev, cache=self.cache,
                announce=self.announce,
            )  # fmt: skip
            if self.config.relays:
                self.subscriber = RelaySubscriber(
                    "appview",
                    self.config.relays,
                    session,
                    self.indexer.load_cursor,
                    self.indexer.handle_batch,
                )
                self.subscriber.start()
                if self.announce.shared:
                    self._reporting = asyncio.create_task(
                        self.announce.report(db, self.subscriber.staleness)
                    )
            self.label_subscribers = [
                LabelSubscriber(labeler, db, resolver, session, self.cache, self.announce)
                for labeler in self.config.labelers
            ]
            for labels in self.label_subscribers:
                labels.start()
        except BaseException as exc:
            self._error = exc
        self._started.set()
        try:
            if self._error is None:
                await self._stopping.wait()
        finally:
            if self._reporting is not None:
                self._reporting.cancel()
            if self.subscriber is not None:
                await self.subscriber.stop()
            for labels in self.label_subscribers:
                await labels.stop()
            if self.indexer is not None:
                await self.indexer.stop()
            if outward is not None:
                await outward.close()
            if session is not None:
                await session.close()
            if db is not None:
                await db.close()


class AppView:
    """Owns the database, the cache and the indexing thread; started and stopped with the
    app."""

    def __init__(self, config: AppViewConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.db: Database | None = None
        self.context: AppContext | None = None
        self.indexing: IndexingThread | None = None
        self.follower: CacheFollower | None = None
        self.session: aiohttp.ClientSession | None = None
        self.outward: aiohttp.ClientSession | None = None

    @property
    def indexer(self) -> Indexer | None:
        return self.indexing.indexer if self.indexing is not None else None

    @property
    def subscriber(self) -> RelaySubscriber | None:
        return self.indexing.subscriber if self.indexing is not None else None

    def labeler_streams(self) -> list[LabelSubscriber]:
        return self.indexing.label_subscribers if self.indexing is not None else []

    async def open(self) -> AppContext:
        """Open the database (migrating it) and the shared HTTP session."""
        self.db = await open_database(
            self.config.database_url,
            self.data_dir / "appview.sqlite",
            self.config.database_pool_size,
        )
        version = await migrate(self.db, MIGRATIONS, "appview")
        self.session = _session()
        self.outward = outward_session(self.config.dev)
        resolver = IdentityResolver(
            self.session, self.config.plc_urls, dev=self.config.dev, web_session=self.outward
        )
        self.context = AppContext(
            self.db,
            resolver,
            self.outward,
            self.config.did,
            feed_fallbacks=dict(self.config.feed_fallbacks),
            serve_stale_for=self.config.serve_stale_for,
            cache=HotCache(self.config.cache_mib << 20),
            announce=Announcer(shared=self.config.workers > 1),
            labelers=self.config.labelers,
        )
        log_event(
            log, "index opened", backend=self.db.dialect, schema_version=version,
            did=self.config.did,
        )  # fmt: skip
        return self.context

    async def start(self) -> None:
        context = self.context
        assert context is not None
        if self.config.workers > 1:
            # Each worker's cache follows what the others change.
            assert isinstance(self.db, PostgresDatabase)
            self.follower = CacheFollower(self.db, context.cache, context.announce.origin)
            self.follower.start()
        if self.config.indexing and (self.config.relays or self.config.labelers):
            self.indexing = IndexingThread(
                self.config, self.data_dir, context.cache, context.announce
            )
            await self.indexing.start()

    async def stop(self) -> None:
        if self.follower is not None:
            await self.follower.stop()
        if self.indexing is not None:
            await self.indexing.stop()
        if self.outward is not None:
            await self.outward.close()
        if self.session is not None:
            await self.session.close()
        if self.db is not None:
            await self.db.close()

    def index_staleness(self) -> float:
        """Seconds the index has gone without any relay (0 while one is connected), as the
        indexing worker tells when another worker indexes."""
        if self.subscriber is not None:
            return self.subscriber.staleness()
        if self.follower is not None and not self.config.indexing and self.config.relays:
            return self.follower.staleness()
        return 0.0

    def did_document(self) -> dict[str, Any]:
        """The did:web document: where clients and PDSes reach this AppView, also as the
        notification service that push registrations (`registerPush`) are sent to."""
        return service_document(
            self.config.did,
            "bsky_appview",
            "BskyAppView",
            self.config.public_url,
            ("bsky_notif", "BskyNotificationService"),
        )
