"""`strata up --demo`: a small network to look at: accounts with profiles, follows, posts with
mentions, links, an image, a reply thread and a quote, likes and reposts."""

from __future__ import annotations

import datetime as dt
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiohttp

from strata.core.syntax import format_datetime
from strata.net.client import XrpcClient, XrpcFailed
from strata.node.config import NodeConfig

DEMO_PASSWORD: Final = "strata-demo"
MARKER: Final = "demo-seeded"
PEOPLE: Final = (
    ("alice", "Alice", "Runs her own PDS. Gardens on weekends."),
    ("bob", "Bob", "Relay operator, coffee enthusiast."),
    ("carol", "Carol", "Writes feed algorithms for fun."),
    ("dan", "Dan", "Just here to read."),
)
MENTION: Final = re.compile(r"(?<![\w.])@([a-z0-9][a-z0-9.-]*[a-z0-9])", re.IGNORECASE)
LINK: Final = re.compile(r"https?://[^\s)]+[^\s).,;:!?]")


def facets(text: str, handles: dict[str, str]) -> list[dict[str, Any]]:
    """Mention and link facets of `text`, with UTF-8 byte offsets as the lexicon asks;
    `handles` maps the handles that may be mentioned to their DIDs."""
    out: list[dict[str, Any]] = []

    def span(start: int, end: int) -> dict[str, int]:
        return {
            "byteStart": len(text[:start].encode()),
            "byteEnd": len(text[:end].encode()),
        }

    for match in MENTION.finditer(text):
        did = handles.get(match.group(1).lower())
        if did is not None:
            feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
            out.append({"index": span(*match.span()), "features": [feature]})
    for match in LINK.finditer(text):
        feature = {"$type": "app.bsky.richtext.facet#link", "uri": match.group(0)}
        out.append({"index": span(*match.span()), "features": [feature]})
    return out


def png(width: int, height: int, color: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """An RGB PNG image with each pixel's color from `color(x, y)`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in color(x, y)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _sunset(x: int, y: int) -> tuple[int, int, int]:
    return (250 - y // 3, 120 + y // 2, 90 + x // 4)


def _now() -> str:
    return format_datetime(dt.datetime.now(dt.UTC))


class _Demo:
    def __init__(self, http: aiohttp.ClientSession, config: NodeConfig) -> None:
        self.http = http
        self.config = config
        self.clients: dict[str, XrpcClient] = {}
        self.handles: dict[str, str] = {}

    def handle(self, name: str) -> str:
        return f"{name}{self.config.handle_domain}"

    async def account(self, name: str, display_name: str, description: str) -> None:
        client = XrpcClient(self.http, self.config.url("pds"))
        try:
            session = await client.create_account(self.handle(name), DEMO_PASSWORD)
        except XrpcFailed as exc:
            if exc.error != "HandleNotAvailable":
                raise
            session = await client.login(self.handle(name), DEMO_PASSWORD)
        self.clients[name] = client
        self.handles[session.handle] = session.did
        await client.put_record(
            "app.bsky.actor.profile",
            "self",
            {
                "$type": "app.bsky.actor.profile",
                "displayName": display_name,
                "description": description,
            },
        )

    def did(self, name: str) -> str:
        return self.handles[self.handle(name)]

    async def post(self, name: str, text: str, **extra: Any) -> dict[str, str]:
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "langs": ["en"],
            "createdAt": _now(),
            **extra,
        }
        found = facets(text, self.handles)
        if found:
            record["facets"] = found
        return await self.clients[name].create_record("app.bsky.feed.post", record)

    async def act(self, name: str, collection: str, subject: dict[str, str] | str) -> None:
        record = {"$type": collection, "subject": subject, "createdAt": _now()}
        await self.clients[name].create_record(collection, record)

    async def image(self, name: str) -> dict[str, Any]:
        blob = await self.clients[name].procedure(
            "com.atproto.repo.uploadBlob", data=png(240, 160, _sunset), content_type="image/png"
        )
        return {
            "$type": "app.bsky.embed.images",
            "images": [
                {
                    "image": blob["blob"],
                    "alt": "A gradient from orange to violet, like a sunset.",
                    "aspectRatio": {"width": 240, "height": 160},
                }
            ],
        }

    async def run(self) -> None:
        for person in PEOPLE:
            await self.account(*person)
        names = [name for name, _, _ in PEOPLE]
        for follower in names:
            for followed in names:
                if follower != followed and not (follower == "dan" and followed == "carol"):
                    await self.act(follower, "app.bsky.graph.follow", self.did(followed))
        hello = await self.post("alice", "Hello from my own node! Everything here runs locally.")
        relay = await self.post(
            "bob",
            f"@{self.handle('alice')} welcome! My relay follows your PDS now. "
            "Spec: https://atproto.com/specs/sync",
        )
        await self.post(
            "alice",
            "Thanks! Two relays, two AppViews, no single upstream.",
            reply={"root": relay, "parent": relay},
        )
        picture = await self.image("carol")
        sunset = await self.post("carol", "Sunset from the balcony.", embed=picture)
        await self.post(
            "dan",
            "This one deserves a quote.",
            embed={"$type": "app.bsky.embed.record", "record": sunset},
        )
        feeds = await self.post("carol", "Writing a feed algorithm is one Python class.")
        await self.post("bob", "Coffee, then relay maintenance. In that order.")
        for name, subject in (
            ("bob", hello),
            ("carol", hello),
            ("dan", hello),
            ("alice", sunset),
            ("dan", feeds),
        ):
            await self.act(name, "app.bsky.feed.like", subject)
        await self.act("bob", "app.bsky.feed.repost", sunset)
        await self.act("alice", "app.bsky.feed.repost", feeds)


async def seed_demo(http: aiohttp.ClientSession, config: NodeConfig, data_dir: Path) -> bool:
    """Seed the demo network once per data directory; returns False when it was seeded
    before."""
    marker = data_dir / MARKER
    if marker.exists():
        return False
    await _Demo(http, config).run()
    marker.write_text(_now() + "\n")
    return True
