"""A feed generator reading a real relay that follows a real PDS: records written on the PDS
show up in `hot`, `lang-*`, `following` and a custom feed; deletes disappear; cursors page
without repeats; bad requests and bad tokens get the right 4xx."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from strata.core.crypto import K256Keypair
from strata.core.jwt import sign_service_jwt
from strata.core.lexicon import Catalog
from strata.feedgen.algorithm import load_algorithm
from strata.identity import IdentityResolver
from tests.feedgen.conftest import DatabaseUnderTest
from tests.feedgen.services import create_account, running_feedgen, wait_connected
from tests.services import eventually, running_pds, running_plc, running_relay

SKELETON = "app.bsky.feed.getFeedSkeleton"
CATALOG = Catalog.bundled()


class Client:
    """getFeedSkeleton and friends against one feed generator."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def get(
        self, nsid: str, token: str | None = None, raw_auth: str | None = None, **params: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": raw_auth or f"Bearer {token}"} if raw_auth or token else {}
        async with self.http.get(f"{self.url}/xrpc/{nsid}", params=params, headers=headers) as r:
            body = await r.json()
        if r.status == 200:
            CATALOG.validate_output(nsid, body)
        return r.status, body

    async def skeleton(self, feed: str, token: str | None = None, **params: Any) -> list[Any]:
        status, body = await self.get(SKELETON, token, feed=feed, **params)
        assert status == 200, body
        return [item if "reason" in item else item["post"] for item in body["feed"]]

    async def pages(self, feed: str, limit: int, token: str | None = None) -> list[str]:
        out: list[str] = []
        cursor: str | None = None
        for _ in range(50):
            params: dict[str, Any] = {"feed": feed, "limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            status, body = await self.get(SKELETON, token, **params)
            assert status == 200, body
            assert len(body["feed"]) <= limit
            out.extend(item["post"] for item in body["feed"])
            cursor = body.get("cursor")
            if cursor is None:
                return out
        raise AssertionError("the feed never ended")

    async def error(self, token: str | None = None, raw_auth: str | None = None, **p: Any) -> Any:
        status, body = await self.get(SKELETON, token, raw_auth, **p)
        return status, body["error"]


async def test_feeds_from_a_real_pds_through_a_relay(
    tmp_path: Path, database: DatabaseUnderTest
) -> None:
    my_likes = load_algorithm("tests.feedgen.custom:MyLikes")
    async with (
        database.location() as database_url,
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        running_relay(tmp_path / "relay", plc.url, crawl=(pds.url,)) as relay,
        aiohttp.ClientSession() as http,
    ):
        await wait_connected(relay.relay)
        alice = await create_account(http, pds.url, "alice.test")
        bob = await create_account(http, pds.url, "bob.test")
        carol = await create_account(http, pds.url, "carol.test")
        a1 = await alice.say("hello world", ["en"])
        b1 = await bob.say("olá mundo", ["pt"])
        b2 = await bob.say("hello from bob", ["en-GB"])
        c1 = await carol.say("carol says hi", ["en"])
        await carol.write("app.bsky.feed.like", {"subject": b2})
        await alice.write("app.bsky.feed.like", {"subject": b2})
        repost = await alice.write("app.bsky.feed.repost", {"subject": b2})
        await carol.write("app.bsky.graph.follow", {"subject": alice.did})
        a2 = await alice.say("a reply to bob", ["en"], reply_to=b1)

        async with running_feedgen(
            tmp_path / "feedgen", plc.url, relay.url, alice.did, database_url, [my_likes]
        ) as running:
            feedgen = running.feedgen
            client = Client(http, running.url)
            english = {a1["uri"], b2["uri"], c1["uri"]}
            await eventually(
                lambda: client.skeleton(running.feed("lang-en")),
                timeout=10.0,
                accept=lambda s: set(s) == english,
            )

            # What's hot: the liked and reposted post first; replies are not ranked.
            hot = await eventually(
                lambda: client.skeleton(running.feed("hot")),
                timeout=10.0,
                accept=lambda s: len(s) == 4,
            )
            assert hot[0] == b2["uri"] and a2["uri"] not in hot
            assert set(hot) == english | {b1["uri"]}
            assert await client.skeleton(running.feed("lang-pt")) == [b1["uri"]]

            # Following needs a viewer; a token from the viewer's PDS names one.
            aud = feedgen.did
            assert aud.startswith("did:web:localhost%3A")
            token = await carol.service_token(aud, SKELETON)
            reason = {"$type": "app.bsky.feed.defs#skeletonReasonRepost", "repost": repost["uri"]}
            repost_item = {"post": b2["uri"], "reason": reason}
            assert await client.skeleton(running.feed("following"), token) == [
                a2["uri"],
                repost_item,
                a1["uri"],
            ]
            # A token without lxm is accepted too; an anonymous request is not.
            any_method = await carol.service_token(aud, None)
            assert len(await client.skeleton(running.feed("following"), any_method)) == 3
            assert await client.error(feed=running.feed("following")) == (401, "AuthRequired")
            # The custom feed, through the same interface.
            assert await client.skeleton(running.feed("my-likes"), token) == [b2["uri"]]
            assert await client.error(feed=running.feed("my-likes")) == (401, "AuthRequired")

            # Cursors page through without repeats or gaps.
            everything = await client.skeleton(running.feed("hot"))
            for limit in (1, 3):
                assert await client.pages(running.feed("hot"), limit) == everything
                assert await client.pages(running.feed("lang-en"), limit) == (
                    await client.skeleton(running.feed("lang-en"))
                )
                assert len(await client.pages(running.feed("following"), limit, token)) == 3

            # Bad requests.
            other = f"at://{bob.did}/app.bsky.feed.generator/hot"
            for feed in (running.feed("nope"), other, f"at://{alice.did}/app.bsky.feed.post/hot"):
                assert await client.error(feed=feed) == (400, "UnknownFeed")
            for name, cursor in (("hot", "junk"), ("lang-en", "1::nope"), ("following", "x")):
                status_error = await client.error(token, feed=running.feed(name), cursor=cursor)
                assert status_error == (400, "InvalidRequest")
            assert await client.error(feed=running.feed("hot"), limit=0) == (400, "InvalidRequest")
            assert await client.error(feed="not a uri") == (400, "InvalidRequest")

            # Bad tokens, for any feed.
            hot_feed = running.feed("hot")
            wrong_aud = await carol.service_token("did:web:elsewhere.test", SKELETON)
            wrong_lxm = await carol.service_token(aud, "app.bsky.feed.getTimeline")
            head, body, signature = token.split(".")
            tail = "AAAA" if signature[-4:] != "AAAA" else "BBBB"
            forged = f"{head}.{body}.{signature[:-4]}{tail}"
            stranger = K256Keypair.generate()
            unknown = sign_service_jwt(
                stranger, "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", aud, SKELETON, time.time()
            )
            imposter = sign_service_jwt(stranger, carol.did, aud, SKELETON, time.time())
            expired = sign_service_jwt(stranger, carol.did, aud, SKELETON, time.time() - 600)
            for bad, error in (
                (wrong_aud, "BadJwtAudience"),
                (wrong_lxm, "BadJwtLexiconMethod"),
                (forged, "BadJwtSignature"),
                (imposter, "BadJwtSignature"),
                (unknown, "BadJwtIss"),
                (expired, "JwtExpired"),
                ("not.a.jwt", "BadJwt"),
            ):
                assert await client.error(bad, feed=hot_feed) == (401, error), error
            assert await client.error(raw_auth="Basic Zm9vOmJhcg==", feed=hot_feed) == (
                401,
                "AuthenticationRequired",
            )

            # Deletes leave every feed.
            await alice.delete(a1["uri"])
            await alice.delete(repost["uri"])
            await eventually(
                lambda: client.skeleton(running.feed("following"), token),
                timeout=10.0,
                accept=lambda s: s == [a2["uri"]],
            )
            assert a1["uri"] not in await client.skeleton(running.feed("lang-en"))
            # (a first page may reuse a ranking up to a second old)
            await eventually(
                lambda: client.skeleton(running.feed("hot")),
                timeout=10.0,
                accept=lambda s: a1["uri"] not in s,
            )

            # Describing the feeds, and the did:web that AppViews resolve to find this service.
            status, described = await client.get("app.bsky.feed.describeFeedGenerator")
            assert status == 200
            assert described == {
                "did": aud,
                "feeds": [
                    {"uri": running.feed(rkey)}
                    for rkey in ("hot", "following", "lang-en", "lang-pt", "my-likes")
                ],
            }
            resolver = IdentityResolver(http, (plc.url,), dev=True)
            document = (await resolver.resolve_did(aud)).value
            assert document.service_endpoint("bsky_fg", "BskyFeedGenerator") == (
                feedgen.config.public_url
            )

            async with http.get(f"{running.url}/xrpc/_health") as r:
                assert r.status == 200
            async with http.get(f"{running.url}/metrics") as r:
                metrics = await r.text()
            assert 'strata_feedgen_events_total{type="commit"}' in metrics
            assert 'strata_feedgen_skeleton_requests_total{feed="hot",outcome="ok"}' in metrics
