"""The AppView as a running service: its index, its relay subscription and its identity."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from strata.appview.context import AppContext
from strata.appview.indexer import Indexer
from strata.appview.schema import MIGRATIONS
from strata.database import Database, migrate, open_database
from strata.identity import IdentityResolver
from strata.identity.service_did import service_did, service_document
from strata.net.logs import log_event
from strata.net.subscriber import RelaySubscriber

log = logging.getLogger("strata.appview")


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

    @property
    def did(self) -> str:
        return service_did(self.public_url, self.dev)


class AppView:
    """Owns the database, the indexer and the subscriber; started and stopped with the app."""

    def __init__(self, config: AppViewConfig, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.db: Database | None = None
        self.context: AppContext | None = None
        self.indexer: Indexer | None = None
        self.subscriber: RelaySubscriber | None = None
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> AppContext:
        """Open the database (migrating it) and the shared HTTP session."""
        self.db = await open_database(self.config.database_url, self.data_dir / "appview.sqlite")
        version = await migrate(self.db, MIGRATIONS, "appview")
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), headers={"User-Agent": "strata-appview"}
        )
        resolver = IdentityResolver(self.session, self.config.plc_urls, dev=self.config.dev)
        self.context = AppContext(
            self.db,
            resolver,
            self.session,
            self.config.did,
            feed_fallbacks=dict(self.config.feed_fallbacks),
            serve_stale_for=self.config.serve_stale_for,
        )
        self.indexer = Indexer(self.db, resolver, self.session, dev=self.config.dev)
        log_event(
            log, "index opened", backend=self.db.dialect, schema_version=version,
            did=self.config.did,
        )  # fmt: skip
        return self.context

    async def start(self) -> None:
        assert self.indexer is not None and self.session is not None
        if self.config.relays:
            self.subscriber = RelaySubscriber(
                "appview",
                self.config.relays,
                self.session,
                self.indexer.load_cursor,
                self.indexer.handle_batch,
            )
            self.subscriber.start()

    async def stop(self) -> None:
        if self.subscriber is not None:
            await self.subscriber.stop()
        if self.indexer is not None:
            await self.indexer.stop()
        if self.session is not None:
            await self.session.close()
        if self.db is not None:
            await self.db.close()

    def index_staleness(self) -> float:
        """Seconds the index has gone without any relay (0 while one is connected)."""
        return self.subscriber.staleness() if self.subscriber is not None else 0.0

    def did_document(self) -> dict[str, Any]:
        """The did:web document: where clients and PDSes reach this AppView."""
        return service_document(
            self.config.did, "bsky_appview", "BskyAppView", self.config.public_url
        )
