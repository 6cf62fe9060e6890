"""The feed generator's configuration, and the did:web it derives from its public URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from strata.identity.did import did_web_url
from strata.identity.errors import InvalidIdentifier


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

    @property
    def did(self) -> str:
        """This feed generator's DID: did:web of its public host."""
        return service_did(self.public_url, self.dev)


class InvalidPublicUrl(ValueError):
    """A public URL that no did:web can name."""


def service_did(public_url: str, dev: bool) -> str:
    """The did:web naming the host of `public_url` (the port, if any, percent-encoded).

    Raises `InvalidPublicUrl` unless resolving that DID leads back to `public_url`: a did:web
    document is fetched over https from the default port, except on loopback in dev mode.
    """
    parts = urlsplit(public_url)
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or not host
        or ":" in host
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise InvalidPublicUrl(f"{public_url!r} is not a URL of the form https://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise InvalidPublicUrl(f"{public_url!r} has an invalid port") from None
    authority = host if port is None else f"{host}:{port}"
    did = f"did:web:{host}" if port is None else f"did:web:{host}%3A{port}"
    try:
        fetched_from = did_web_url(did, dev)
    except InvalidIdentifier as exc:
        raise InvalidPublicUrl(str(exc)) from exc
    if fetched_from != f"{parts.scheme}://{authority}/.well-known/did.json":
        raise InvalidPublicUrl(
            f"{did} would be resolved at {fetched_from}, not at {public_url}: use https on the "
            "default port (plain http and ports are for loopback hosts in --dev mode)"
        )
    return did


def did_document(did: str, public_url: str) -> dict[str, object]:
    """The document served at `/.well-known/did.json`: one `#bsky_fg` feed generator service."""
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "service": [
            {
                "id": "#bsky_fg",
                "type": "BskyFeedGenerator",
                "serviceEndpoint": public_url.rstrip("/"),
            }
        ],
    }
