"""A feed generator served in-process next to a real PLC, PDS and relay, and accounts that
post, like, repost and follow through the PDS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from strata.core.syntax import format_datetime
from strata.feedgen.algorithm import Algorithm
from strata.feedgen.app import create_feedgen_app
from strata.feedgen.config import FeedgenConfig
from strata.feedgen.feeds import builtin_algorithms
from strata.feedgen.service import Feedgen
from strata.serve import listening
from tests.relay.xrpc import PdsUser
from tests.services import free_port

T = TypeVar("T")


@dataclass
class RunningFeedgen:
    url: str
    feedgen: Feedgen

    def feed(self, rkey: str) -> str:
        return f"at://{self.feedgen.config.publisher}/app.bsky.feed.generator/{rkey}"


@contextlib.asynccontextmanager
async def running_feedgen(
    data_dir: Path,
    plc_url: str,
    relay_url: str,
    publisher: str | None,
    database_url: str | None = None,
    extra: Sequence[Algorithm] = (),
) -> AsyncIterator[RunningFeedgen]:
    """A `strata feedgen` in dev mode on a free port, known as did:web:localhost%3A<port>."""
    port = free_port()
    config = FeedgenConfig(
        public_url=f"http://localhost:{port}",
        relays=(relay_url,),
        plc_urls=(plc_url,),
        database_url=database_url,
        publisher=publisher,
        dev=True,
    )
    feedgen = Feedgen(config, data_dir, [*builtin_algorithms(("en", "pt")), *extra])
    async with listening(create_feedgen_app(feedgen), "127.0.0.1", port):
        yield RunningFeedgen(f"http://127.0.0.1:{port}", feedgen)


def now() -> str:
    return format_datetime(dt.datetime.now(dt.UTC))


class Account(PdsUser):
    """A PDS account that writes the records feeds are made of."""

    async def write(self, collection: str, record: dict[str, Any]) -> dict[str, str]:
        """Create a record; returns its strong reference (`uri` and `cid`)."""
        record = {"$type": collection, "createdAt": now(), **record}
        answer = await self.call(
            "com.atproto.repo.createRecord",
            {"repo": self.did, "collection": collection, "record": record},
        )
        return {"uri": answer["uri"], "cid": answer["cid"]}

    async def say(
        self, text: str, langs: Sequence[str] = (), reply_to: dict[str, str] | None = None
    ) -> dict[str, str]:
        record: dict[str, Any] = {"text": text, "langs": list(langs)}
        if reply_to is not None:
            record["reply"] = {"root": reply_to, "parent": reply_to}
        return await self.write("app.bsky.feed.post", record)

    async def delete(self, uri: str) -> None:
        _, _, _, collection, rkey = uri.split("/")
        await self.call(
            "com.atproto.repo.deleteRecord",
            {"repo": self.did, "collection": collection, "rkey": rkey},
        )

    async def service_token(self, aud: str, lxm: str | None) -> str:
        """A service JWT from the PDS, signed with this account's repo key."""
        params = {"aud": aud, **({"lxm": lxm} if lxm else {})}
        async with self.http.get(
            f"{self.pds}/xrpc/com.atproto.server.getServiceAuth",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as r:
            answer = await r.json()
            assert r.status == 200, answer
        return str(answer["token"])


async def wait_connected(relay: Any) -> None:
    """Wait until a relay follows its hosts (it reads a new host from its live tail)."""
    async with asyncio.timeout(10):
        while not relay.streams or not all(s.connected for s in relay.streams.values()):
            await asyncio.sleep(0.02)


async def create_account(http: aiohttp.ClientSession, pds: str, handle: str) -> Account:
    user = await PdsUser.create(http, pds, handle)
    return Account(user.http, user.pds, user.did, user.token)
