"""The feed generator's configuration, and the did:web it derives from its public URL."""

from __future__ import annotations

from dataclasses import dataclass

from strata.identity.service_did import service_did, service_document


@dataclass(frozen=True)
class FeedgenConfig:
    """Where a feed generator is reached, what it reads, and who publishes its feeds."""

    public_url: str
    relays: tuple[str, ...]
    plc_urls: tuple[str, ...]
    database_url: str | None = None
    publisher: str | None = None
    """The DID whose repository holds the feeds' `app.bsky.feed.generator` records."""
    dev: bool = False
    indexing: bool = True
    """Whether this process follows the relays: with several workers, the first does, and
    the others serve what it indexes."""

    @property
    def did(self) -> str:
        """This feed generator's DID: did:web of its public host."""
        return service_did(self.public_url, self.dev)


def did_document(did: str, public_url: str) -> dict[str, object]:
    """The document served at `/.well-known/did.json`: one `#bsky_fg` feed generator service."""
    return service_document(did, "bsky_fg", "BskyFeedGenerator", public_url)
