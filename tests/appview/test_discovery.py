"""What the app shows to find accounts, posts and feeds, from the AppView's index on SQLite
and Postgres: follow suggestions (the accounts your follows follow; accounts like another),
known followers, quotes of a post, popular and suggested feeds, and the runtime configuration
and trending topics (none: Strata keeps no trend data), each checked against its lexicon."""

from __future__ import annotations

from pathlib import Path

from tests.appview.network import appview_network
from tests.appview.test_api import accounts, ref, view
from tests.appview.test_bookmarks import call
from tests.appview.test_threads_v2 import write

FOLLOW = "app.bsky.graph.follow"
POST = "app.bsky.feed.post"


async def test_discovery(tmp_path: Path, database_url: str | None) -> None:
    async with appview_network(tmp_path, database_url) as network:
        alice, bob, carol, dan, erin = await accounts(
            network, "alice", "bob", "carol", "dan", "erin"
        )
        follows = ((alice, bob), (alice, carol), (bob, dan), (bob, erin), (bob, carol),
                   (carol, alice), (carol, dan))  # fmt: skip
        for n, (follower, subject) in enumerate(follows, start=10):
            # Each later than the one before, so "the latest first" is one order.
            at = f"2026-11-{n}T00:00:00.000Z"
            await write(network, follower, FOLLOW, {"subject": subject.did, "createdAt": at})
        people = (alice, bob, carol, dan, erin)
        names = {u.did: name for u, name in zip(people, ("alice", "bob", "carol", "dan", "erin"),
                                                strict=True)}  # fmt: skip

        # Alice follows bob and carol: both follow dan, bob follows erin.
        found = await view(alice, "app.bsky.actor.getSuggestions")
        assert [names[a["did"]] for a in found["actors"]] == ["dan", "erin"]
        known = found["actors"][0]["viewer"]["knownFollowers"]
        assert known["count"] == 2
        assert {names[f["did"]] for f in known["followers"]} == {"bob", "carol"}
        first = await view(alice, "app.bsky.actor.getSuggestions", limit=1)
        assert [names[a["did"]] for a in first["actors"]] == ["dan"]
        rest = await view(alice, "app.bsky.actor.getSuggestions", limit=1, cursor=first["cursor"])
        assert [names[a["did"]] for a in rest["actors"]] == ["erin"]
        refused = await view(alice, "app.bsky.actor.getSuggestions", 400, cursor="soon")
        assert refused["error"] == "InvalidRequest"

        # Known followers of dan, for alice: those she follows, the latest first.
        followers = await view(alice, "app.bsky.graph.getKnownFollowers", actor="dan.test")
        assert [names[f["did"]] for f in followers["followers"]] == ["carol", "bob"]
        assert followers["subject"]["did"] == dan.did
        one = await view(alice, "app.bsky.graph.getKnownFollowers", actor=dan.did, limit=1)
        assert [names[f["did"]] for f in one["followers"]] == ["carol"]
        async with network.http.get(
            f"{network.appview.url}/xrpc/app.bsky.graph.getKnownFollowers",
            params={"actor": dan.did},
        ) as response:
            assert response.status == 401

        # Accounts like bob, for alice: whom bob likes, then whom he follows, the most
        # followed first; never anyone alice follows.
        liked = await write(network, erin, POST, {"text": "erin writes"})
        await write(network, bob, "app.bsky.feed.like", {"subject": ref(liked)})
        similar = await view(alice, "app.bsky.graph.getSuggestedFollowsByActor", actor=bob.did)
        assert [names[a["did"]] for a in similar["suggestions"]] == ["erin", "dan"]

        # Mutes and blocks take accounts out of the suggestions.
        await call(alice, "app.bsky.graph.muteActor", {"actor": erin.did})
        found = await view(alice, "app.bsky.actor.getSuggestions")
        assert [names[a["did"]] for a in found["actors"]] == ["dan"]
        similar = await view(alice, "app.bsky.graph.getSuggestedFollowsByActor", actor=bob.did)
        assert [names[a["did"]] for a in similar["suggestions"]] == ["dan"]
        await write(network, dan, "app.bsky.graph.block", {"subject": alice.did})
        assert (await view(alice, "app.bsky.actor.getSuggestions"))["actors"] == []

        # Quotes of alice's post, newest first; dan blocks alice, so his quote is not shown.
        quoted = await write(network, alice, POST, {"text": "quote me"})
        quotes = []
        for n, author in enumerate((carol, dan, bob)):
            embed = {"$type": "app.bsky.embed.record", "record": ref(quoted)}
            record = {"text": "look", "embed": embed, "createdAt": f"2026-11-2{n}T00:00:00.000Z"}
            quotes.append(await write(network, author, POST, record))
        body = await view(erin, "app.bsky.feed.getQuotes", uri=quoted["uri"])
        assert [p["uri"] for p in body["posts"]] == [quotes[2]["uri"], quotes[0]["uri"]]
        assert body["uri"] == quoted["uri"] and "cid" not in body
        page = await view(erin, "app.bsky.feed.getQuotes", uri=quoted["uri"],
                          cid=quoted["cid"], limit=1)  # fmt: skip
        assert [p["uri"] for p in page["posts"]] == [quotes[2]["uri"]]
        assert page["cid"] == quoted["cid"]
        more = await view(erin, "app.bsky.feed.getQuotes", uri=quoted["uri"],
                          cursor=page["cursor"])  # fmt: skip
        assert [p["uri"] for p in more["posts"]] == [quotes[0]["uri"]]

        # Feeds: the most liked first; a query finds names holding it, with no wildcards.
        cats = await write(
            network,
            alice,
            "app.bsky.feed.generator",
            {"did": "did:web:localhost%3A9", "displayName": "Cats 100%"},
        )
        dogs = await write(network, bob, "app.bsky.feed.generator",
                           {"did": "did:web:localhost%3A9", "displayName": "Dogs"})  # fmt: skip
        for liker in (carol, erin):
            await write(network, liker, "app.bsky.feed.like", {"subject": ref(dogs)})
        await write(network, carol, "app.bsky.feed.like", {"subject": ref(cats)})
        popular = await view(carol, "app.bsky.unspecced.getPopularFeedGenerators")
        assert [f["displayName"] for f in popular["feeds"]] == ["Dogs", "Cats 100%"]
        top = await view(carol, "app.bsky.unspecced.getPopularFeedGenerators", limit=1)
        assert [f["uri"] for f in top["feeds"]] == [dogs["uri"]]
        after = await view(carol, "app.bsky.unspecced.getPopularFeedGenerators", limit=1,
                           cursor=top["cursor"])  # fmt: skip
        assert [f["uri"] for f in after["feeds"]] == [cats["uri"]]
        for query, expected in (("CAT", ["Cats 100%"]), ("0%", ["Cats 100%"]), ("%", ["Cats 100%"]),
                                ("_", []), ("o", ["Dogs"])):  # fmt: skip
            searched = await view(carol, "app.bsky.unspecced.getPopularFeedGenerators",
                                  query=query)  # fmt: skip
            assert [f["displayName"] for f in searched["feeds"]] == expected, query
        suggested = await view(carol, "app.bsky.unspecced.getSuggestedFeeds", limit=1)
        assert [f["uri"] for f in suggested["feeds"]] == [dogs["uri"]]
        first = await view(carol, "app.bsky.feed.getSuggestedFeeds", limit=1)
        second = await view(carol, "app.bsky.feed.getSuggestedFeeds", cursor=first["cursor"])
        assert [f["uri"] for f in first["feeds"] + second["feeds"]] == [dogs["uri"], cats["uri"]]
        assert "cursor" not in second
        # Feeds by an account that blocks the reader are left out.
        await write(network, bob, "app.bsky.graph.block", {"subject": erin.did})
        for nsid in ("app.bsky.feed.getSuggestedFeeds", "app.bsky.unspecced.getSuggestedFeeds",
                     "app.bsky.unspecced.getPopularFeedGenerators"):  # fmt: skip
            shown = await view(erin, nsid)
            assert [f["uri"] for f in shown["feeds"]] == [cats["uri"]], nsid

        trending = await view(carol, "app.bsky.unspecced.getTrendingTopics")
        assert trending == {"topics": [], "suggested": []}
        config = await view(carol, "app.bsky.unspecced.getConfig")
        assert config == {"checkEmailConfirmed": False, "topicsEnabled": False}
