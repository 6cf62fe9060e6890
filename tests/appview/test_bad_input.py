"""Bad input to the AppView: malformed parameters and cursors, bad service tokens, and feed
generators that answer garbage, hang or name posts that do not exist. Each gets a clear 4xx or
an upstream error, or a filtered answer; never a 500."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from strata.appview.feedgen_client import Feedgens, Skeleton
from strata.appview.views import FeedItem
from strata.core.crypto import K256Keypair
from strata.core.jwt import sign_service_jwt
from tests.appview.network import appview_network
from tests.appview.test_api import accounts, create, view
from tests.services import eventually, free_port, serving


def hostile_generator() -> tuple[web.Application, dict[str, Any]]:
    """A feed generator whose answer the test chooses per request (`state["mode"]`)."""
    state: dict[str, Any] = {"mode": "ok", "posts": []}
    app = web.Application()

    async def did_json(request: web.Request) -> web.Response:
        return web.json_response({
            "id": state["did"],
            "service": [{"id": "#bsky_fg", "type": "BskyFeedGenerator",
                         "serviceEndpoint": state["url"]}],
        })  # fmt: skip

    async def skeleton(request: web.Request) -> web.StreamResponse:
        mode = state["mode"]
        state["calls"] = state.get("calls", 0) + 1
        if "handler" in state:
            response: web.StreamResponse = await state["handler"](request)
            return response
        if mode == "garbage":
            return web.Response(body=b"\x00not json{", content_type="application/json")
        if mode == "wrong-shape":
            return web.json_response({"feed": "everything"})
        if mode == "hang":
            await asyncio.sleep(30)
        if mode == "error":
            return web.json_response({"error": "Boom"}, status=500)
        if mode == "refuse":
            return web.json_response({"error": "UnknownFeed", "message": "no"}, status=400)
        feed: list[Any] = [{"post": uri} for uri in state["posts"]]
        feed += [
            {"post": "at://did:plc:nonexistent0000000000000/app.bsky.feed.post/3jzfcijpj2z2a"},
            {"post": "not a uri"},
            {"post": "at://did:plc:xyz/app.bsky.feed.like/3jzfcijpj2z2a"},
            "a string",
            {"post": 7},
        ]
        return web.json_response({"feed": feed, "cursor": "next"})

    app.router.add_get("/.well-known/did.json", did_json)
    app.router.add_get("/xrpc/app.bsky.feed.getFeedSkeleton", skeleton)
    return app, state


async def test_parameters_cursors_and_tokens(tmp_path: Path) -> None:
    async with appview_network(tmp_path) as network:
        alice, bob = await accounts(network, "alice", "bob")
        await create(alice, "app.bsky.graph.follow", {"subject": bob.did})
        await create(bob, "app.bsky.feed.post", {"text": "one"})

        async def followed() -> dict[str, Any] | None:
            body = await view(alice, "app.bsky.graph.getFollows", actor=alice.did, limit=1)
            return body if body["follows"] else None

        follows = await eventually(followed, what="the follow indexed")

        checks: list[tuple[str, dict[str, Any], int]] = [
            ("app.bsky.feed.getTimeline", {"limit": "many"}, 400),
            ("app.bsky.feed.getTimeline", {"limit": 1000}, 400),
            ("app.bsky.feed.getTimeline", {"cursor": "garbage"}, 400),
            ("app.bsky.feed.getTimeline", {"cursor": "99999999999999999999::x"}, 400),
            ("app.bsky.feed.getTimeline", {"cursor": "12::"}, 400),
            ("app.bsky.feed.getTimeline", {"unknownParam": "x"}, 200),
            # A cursor from another endpoint has the same form: it only filters.
            ("app.bsky.feed.getTimeline", {"cursor": follows["cursor"]}, 200),
            ("app.bsky.actor.searchActors", {"q": "a", "cursor": follows["cursor"]}, 400),
            ("app.bsky.actor.getProfile", {"actor": "not a handle!"}, 400),
            ("app.bsky.actor.getProfile", {"actor": "nobody.test"}, 400),
            ("app.bsky.actor.getProfile", {}, 400),
            ("app.bsky.feed.getPostThread", {"uri": "https://example.com"}, 400),
            ("app.bsky.feed.getPostThread", {"uri": f"at://{bob.did}/app.bsky.feed.post/x"}, 400),
            (
                "app.bsky.feed.getPostThread",
                {"uri": f"at://{bob.did}/app.bsky.feed.post/3k", "depth": -1},
                400,
            ),
            (
                "app.bsky.feed.getPosts",
                {"uris": [f"at://{bob.did}/a.b.c/{i}" for i in range(26)]},
                400,
            ),
            ("app.bsky.feed.getAuthorFeed", {"actor": bob.did, "filter": "everything"}, 200),
            (
                "app.bsky.feed.getFeed",
                {"feed": f"at://{bob.did}/app.bsky.feed.generator/none"},
                400,
            ),
            ("app.bsky.feed.getFeedGenerator", {"feed": "at://x"}, 400),
            ("app.bsky.graph.getRelationships", {"actor": alice.did, "others": ["x"] * 31}, 400),
            ("app.bsky.notification.listNotifications", {"reasons": "like", "cursor": "1::"}, 400),
            ("app.bsky.feed.searchPosts", {"q": "one", "cursor": "-1"}, 400),
            ("app.bsky.feed.searchPosts", {"q": "one", "cursor": "1" * 19}, 400),
            ("app.bsky.feed.searchPosts", {"q": "one", "since": "yesterday"}, 400),
            ("app.bsky.feed.searchPosts", {"q": "one", "until": "2026-13-01"}, 400),
            ("app.bsky.feed.searchPosts", {"q": "one", "limit": 101}, 400),
            ("app.bsky.feed.searchPosts", {"q": "from:nobody.test one"}, 400),
            ("app.bsky.feed.searchPosts", {"q": '" NOT OR * ( ^ %_'}, 200),
            ("app.bsky.feed.searchPosts", {"q": "one", "sort": "top", "cursor": "99"}, 200),
            ("app.bsky.actor.searchActors", {"q": '"*) OR ( %'}, 200),
        ]
        for nsid, params, status in checks:
            body = await view(alice, nsid, status, **params)
            if status != 200:
                assert isinstance(body.get("error"), str) and body.get("message"), (nsid, body)

        # Straight to the AppView: tokens it must refuse.
        appview = network.appview
        url = f"{appview.url}/xrpc/app.bsky.feed.getTimeline"
        stranger = K256Keypair.generate()
        forged = sign_service_jwt(stranger, alice.did, appview.did, "app.bsky.feed.getTimeline",
                                  time.time())  # fmt: skip
        for headers, error in (
            ({}, "AuthMissing"),
            ({"Authorization": "Basic abc"}, "AuthMissing"),
            ({"Authorization": "Bearer not.a.jwt"}, "BadJwt"),
            ({"Authorization": f"Bearer {forged}"}, "BadJwtSignature"),
        ):
            async with network.http.get(url, headers=headers) as response:
                body = await response.json()
                assert (response.status, body["error"]) == (401, error), body
        async with network.http.post(
            f"{appview.url}/xrpc/app.bsky.notification.updateSeen",
            json={"seenAt": "yesterday"},
            headers={"Authorization": f"Bearer {forged}"},
        ) as response:
            assert response.status in (400, 401)


async def test_a_feed_generator_that_misbehaves(tmp_path: Path) -> None:
    """Each kind of failure gets its error (pages never answered before, so nothing is
    remembered); a page answered before is served stale; a generator that keeps failing is
    switched off by its breaker; a configured fallback feed stands in."""
    app, state = hostile_generator()
    async with serving(app) as generator_url, appview_network(tmp_path) as network:
        port = generator_url.rsplit(":", 1)[-1]
        state["did"] = f"did:web:localhost%3A{port}"
        state["url"] = f"http://localhost:{port}"
        context = network.appview.appview.context
        assert context is not None
        context.skeleton_timeout = 1.0
        alice, bob = await accounts(network, "alice", "bob")
        post = await create(bob, "app.bsky.feed.post", {"text": "a real post"})
        state["posts"] = [post["uri"]]
        feed = await create(alice, "app.bsky.feed.generator",
                            {"did": state["did"], "displayName": "Hostile"})  # fmt: skip

        async def ready() -> Any:
            try:
                return await view(alice, "app.bsky.feed.getFeed", feed=feed["uri"])
            except AssertionError:
                return None

        answer = await eventually(ready, what="the feed served")
        assert [i["post"]["uri"] for i in answer["feed"]] == [post["uri"]]
        assert answer["cursor"] == "next"

        # A generator answering with far more than asked: only the page asked for is hydrated.
        asked: list[str | None] = []

        async def flood(request: web.Request) -> web.Response:
            asked.append(request.query.get("limit"))
            return web.json_response({"feed": [{"post": post["uri"]}] * 2000})

        state["handler"] = flood
        body = await view(alice, "app.bsky.feed.getFeed", feed=feed["uri"], limit=3)
        assert len(body["feed"]) == 3 and asked == ["3"]
        del state["handler"]
        for limit, (mode, status, error) in enumerate(
            (
                ("garbage", 502, "UpstreamFailure"),
                ("wrong-shape", 502, "UpstreamFailure"),
                ("error", 502, "UpstreamFailure"),
                ("hang", 504, "UpstreamTimeout"),
                ("refuse", 400, "UnknownFeed"),
            ),
            start=10,
        ):
            state["mode"] = mode
            context.feedgens = Feedgens(context.serve_stale_for)  # a closed breaker each time
            body = await view(alice, "app.bsky.feed.getFeed", status, feed=feed["uri"], limit=limit)
            assert body["error"] == error, (mode, body)

        # The first page was answered before: served from memory, with its age.
        state["mode"] = "error"
        async with alice.http.get(
            f"{network.appview.url}/xrpc/app.bsky.feed.getFeed",
            params={"feed": feed["uri"], "limit": "10"},
        ) as response:
            assert response.status == 502  # this page was never answered
        context.feedgens.remembered.put(
            (feed["uri"], "", "10", ""),
            Skeleton([FeedItem(post["uri"])], "next"),
            time.monotonic() - 42,
        )
        async with alice.http.get(
            f"{network.appview.url}/xrpc/app.bsky.feed.getFeed",
            params={"feed": feed["uri"], "limit": "10"},
        ) as response:
            body = await response.json()
            assert response.status == 200 and int(response.headers["strata-stale-seconds"]) >= 42
            assert [i["post"]["uri"] for i in body["feed"]] == [post["uri"]]

        # Through the PDS, a page it answered before comes back stale when the AppView fails.
        async with alice.http.get(
            f"{alice.pds}/xrpc/app.bsky.feed.getFeed",
            params={"feed": feed["uri"]},
            headers={"Authorization": f"Bearer {alice.token}"},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            assert "strata-stale-seconds" in response.headers
            assert [i["post"]["uri"] for i in body["feed"]] == [post["uri"]]

        # Failures in a row open the generator's breaker: later calls fail without reaching it.
        context.feedgens = Feedgens(context.serve_stale_for)
        for limit in range(20, 23):
            await view(alice, "app.bsky.feed.getFeed", 502, feed=feed["uri"], limit=limit)
        calls = state["calls"]
        started = time.monotonic()
        body = await view(alice, "app.bsky.feed.getFeed", 502, feed=feed["uri"], limit=23)
        assert state["calls"] == calls and time.monotonic() - started < 1.0
        assert "keeps failing" in body["message"]

        # A fallback feed stands in for a failing one with nothing remembered.
        fallback = await create(bob, "app.bsky.feed.generator",
                                {"did": state["did"], "displayName": "Fallback"})  # fmt: skip
        await eventually(
            lambda: context.db.fetchrow(
                "SELECT 1 FROM feed_generator WHERE uri = ?", fallback["uri"]
            ),
            what="indexed",
        )
        context.feed_fallbacks[feed["uri"]] = fallback["uri"]
        context.feedgens = Feedgens(context.serve_stale_for)
        served = {"error": 0}

        async def fallback_skeleton(request: web.Request) -> web.Response:
            served["error" if request.query["feed"] == feed["uri"] else "fallback"] = 1
            if request.query["feed"] == feed["uri"]:
                return web.json_response({"error": "Boom"}, status=500)
            assert "Authorization" not in request.headers
            return web.json_response({"feed": [{"post": post["uri"]}]})

        state["handler"] = fallback_skeleton
        async with alice.http.get(
            f"{alice.pds}/xrpc/app.bsky.feed.getFeed",
            params={"feed": feed["uri"], "limit": "30"},
            headers={"Authorization": f"Bearer {alice.token}"},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            assert response.headers["strata-degraded"] == f"fallback-feed {fallback['uri']}"
            assert [i["post"]["uri"] for i in body["feed"]] == [post["uri"]]

        # A generator whose did:web document cannot be fetched (its host is down) is a failing
        # upstream, not an unknown feed: remembered pages could stand in for it.
        gone = await create(
            alice,
            "app.bsky.feed.generator",
            {"did": f"did:web:localhost%3A{free_port()}", "displayName": "Gone"},
        )
        await eventually(
            lambda: context.db.fetchrow("SELECT 1 FROM feed_generator WHERE uri = ?", gone["uri"]),
            what="indexed",
        )
        body = await view(alice, "app.bsky.feed.getFeed", 502, feed=gone["uri"])
        assert body["error"] == "UpstreamFailure", body

        state["mode"] = "ok"
        state.pop("handler")
        context.feedgens = Feedgens(context.serve_stale_for)
        await view(alice, "app.bsky.feed.getFeed", feed=feed["uri"])


async def test_undecodable_and_invalid_records_are_skipped(tmp_path: Path) -> None:
    """Records that fail their lexicon are counted and skipped; the rest of the commit is
    indexed."""
    async with appview_network(tmp_path) as network:
        (alice,) = await accounts(network, "alice")
        await alice.call(
            "com.atproto.repo.applyWrites",
            {"repo": alice.did, "validate": False, "writes": [
                {"$type": "com.atproto.repo.applyWrites#create",
                 "collection": "app.bsky.feed.post",
                 "value": {"$type": "app.bsky.feed.post", "text": 42, "createdAt": "x"}},
                {"$type": "com.atproto.repo.applyWrites#create",
                 "collection": "app.bsky.feed.post",
                 "value": {"$type": "app.bsky.feed.post", "text": "fine",
                           "createdAt": "2026-11-21T00:00:00.000Z"}},
            ]},
        )  # fmt: skip

        async def indexed() -> bool:
            body = await view(alice, "app.bsky.feed.getAuthorFeed", actor=alice.did)
            return [i["post"]["record"]["text"] for i in body["feed"]] == ["fine"]

        await eventually(indexed, what="the valid post")
