"""The feed generator: its database, its firehose subscription, and the feeds it serves.

With several worker processes over one Postgres database (`--workers`), only the first follows
the firehose. No worker keeps what the index says beyond a moment: the hot feed's rankings are
remembered by the moment they rank (any worker computes the same ranking of a moment from the
index), and a first page reuses a ranking for at most a second.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from strata.core.errors import InvalidSyntax
from strata.core.syntax import AtUri
from strata.database import Database, open_migrated
from strata.feedgen.algorithm import Algorithm
from strata.feedgen.config import FeedgenConfig
from strata.feedgen.indexer import Indexer
from strata.feedgen.schema import MIGRATIONS
from strata.identity import IdentityResolver
from strata.net.logs import log_event
from strata.net.public_fetch import outward_session
from strata.net.service_auth import ServiceAuth
from strata.net.subscriber import RelaySubscriber

log = logging.getLogger("strata.feedgen")

GENERATOR: str = "app.bsky.feed.generator"


class Feedgen:
    """One feed generator over its data directory (or a Postgres database)."""

    def __init__(
        self, config: FeedgenConfig, data_dir: Path, algorithms: Sequence[Algorithm]
    ) -> None:
        self.config = config
        self.did = config.did
        self.data_dir = data_dir
        self.algorithms: dict[str, Algorithm] = {}
        for algorithm in algorithms:
            if algorithm.rkey in self.algorithms:
                raise ValueError(f"two feeds have the record key {algorithm.rkey!r}")
            self.algorithms[algorithm.rkey] = algorithm
        self.subscriber: RelaySubscriber | None = None

    async def start(self) -> None:
        self.db: Database = await open_migrated(
            self.config.database_url, self.data_dir / "feedgen.sqlite", MIGRATIONS, "feedgen"
        )
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), headers={"User-Agent": "strata-feedgen"}
        )
        # Callers' tokens name their issuers: their did:web documents are fetched from public
        # addresses only.
        self.outward = outward_session(self.config.dev)
        self.resolver = IdentityResolver(
            self.session, self.config.plc_urls, dev=self.config.dev, web_session=self.outward
        )
        self.auth = ServiceAuth(self.resolver, self.did, "feedgen")
        self.indexer = Indexer(self.db)
        if self.config.relays and self.config.indexing:
            self.subscriber = RelaySubscriber(
                "feedgen",
                self.config.relays,
                self.session,
                self.indexer.load_cursor,
                self.indexer.handle_batch,
            )
            self.subscriber.start()
        log_event(
            log, "feedgen started", did=self.did, feeds=sorted(self.algorithms),
            relays=list(self.config.relays), database=self.db.dialect,
            indexing=self.config.indexing,
        )  # fmt: skip
        if self.config.publisher is None:
            log_event(
                log, "no publisher: describeFeedGenerator lists no feeds", logging.WARNING,
                hint="set --publisher to the DID that publishes the feed records",
            )  # fmt: skip

    async def stop(self) -> None:
        if self.subscriber is not None:
            await self.subscriber.stop()
        await self.outward.close()
        await self.session.close()
        await self.db.close()

    async def check_health(self) -> None:
        """Raise when feeds cannot be served or kept up to date."""
        await self.db.fetchrow("SELECT 1")
        task = self.subscriber.task if self.subscriber is not None else None
        if task is not None and task.done():
            raise RuntimeError("the firehose subscription has stopped")

    def feed_uris(self) -> list[str]:
        """The at:// URIs of the feeds, when the publisher is known."""
        publisher = self.config.publisher
        if publisher is None:
            return []
        return [f"at://{publisher}/{GENERATOR}/{rkey}" for rkey in self.algorithms]

    def algorithm_for(self, feed: str) -> Algorithm | None:
        """The algorithm serving the feed at:// URI `feed`, if it is one of ours."""
        try:
            uri = AtUri.parse(feed)
        except InvalidSyntax:
            return None
        if uri.collection != GENERATOR or uri.rkey is None:
            return None
        publisher = self.config.publisher
        if publisher is not None and uri.authority != publisher:
            return None
        return self.algorithms.get(uri.rkey)
