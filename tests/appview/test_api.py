"""Every app.bsky method the AppView serves, called through a PDS's proxy, with each answer
checked against the method's output lexicon, on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strata.core.lexicon import Catalog
from tests.appview.network import Network, appview_network, indexed
from tests.relay.xrpc import PdsUser
from tests.services import eventually, running_pds

CATALOG = Catalog.bundled()
NOW = "2026-11-21T00:00:00.000Z"


async def view(user: PdsUser, nsid: str, expect: int = 200, **params: Any) -> dict[str, Any]:
    """Call `nsid` through the user's PDS; check the status and, on success, the lexicon."""
    query: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            query.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    async with user.http.get(
        f"{user.pds}/xrpc/{nsid}",
        params=query,
        headers={"Authorization": f"Bearer {user.token}"},
    ) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == expect, (nsid, response.status, body)
    if expect == 200:
        CATALOG.validate_output(nsid, body)
    return body


async def create(user: PdsUser, collection: str, record: dict[str, Any], **extra: Any) -> Any:
    answer = await user.call(
        "com.atproto.repo.createRecord",
        {"repo": user.did, "collection": collection,
         "record": {"$type": collection, "createdAt": NOW, **record}, **extra},
    )  # fmt: skip
    return answer


async def procedure(user: PdsUser, nsid: str) -> None:
    """A procedure without input or output, such as deactivateAccount."""
    async with user.http.post(
        f"{user.pds}/xrpc/{nsid}", json={}, headers={"Authorization": f"Bearer {user.token}"}
    ) as response:
        assert response.status == 200, await response.text()


def ref(answer: dict[str, Any]) -> dict[str, str]:
    return {"uri": answer["uri"], "cid": answer["cid"]}


async def accounts(network: Network, *names: str) -> list[PdsUser]:
    users = []
    for n, name in enumerate(names):
        pds = network.pdses[n % 2].url
        user = await PdsUser.create(network.http, pds, f"{name}.test")
        await indexed(network, user)
        users.append(user)
    return users


async def test_every_view_matches_its_lexicon(tmp_path: Path, database_url: str | None) -> None:
    async with appview_network(tmp_path, database_url) as network:
        alice, bob, carol = await accounts(network, "alice", "bob", "carol")
        async with network.http.post(
            f"{alice.pds}/xrpc/com.atproto.repo.uploadBlob",
            data=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
            headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "image/png"},
        ) as response:
            blob = (await response.json())["blob"]
        await alice.call(
            "com.atproto.repo.putRecord",
            {"repo": alice.did, "collection": "app.bsky.actor.profile", "rkey": "self",
             "record": {"$type": "app.bsky.actor.profile", "displayName": "Alice A.",
                        "description": "first", "avatar": blob}},
        )  # fmt: skip
        for follower, subject in ((alice, bob), (alice, carol), (bob, alice), (carol, alice)):
            await create(follower, "app.bsky.graph.follow", {"subject": subject.did})
        text = "see https://example.com @bob.test"
        first = await create(
            alice, "app.bsky.feed.post",
            {"text": text, "langs": ["en"], "facets": [
                {"index": {"byteStart": 4, "byteEnd": 23},
                 "features": [{"$type": "app.bsky.richtext.facet#link",
                               "uri": "https://example.com"}]},
                {"index": {"byteStart": 24, "byteEnd": 33},
                 "features": [{"$type": "app.bsky.richtext.facet#mention", "did": bob.did}]}]},
        )  # fmt: skip
        image = await create(
            alice, "app.bsky.feed.post",
            {"text": "a picture", "embed": {"$type": "app.bsky.embed.images",
             "images": [{"image": blob, "alt": "dots", "aspectRatio": {"width": 8, "height": 9}}]}},
        )  # fmt: skip
        link = await create(
            bob, "app.bsky.feed.post",
            {"text": "a link", "embed": {"$type": "app.bsky.embed.external", "external": {
                "uri": "https://example.com", "title": "Example", "description": "d"}}},
        )  # fmt: skip
        reply = await create(
            bob,
            "app.bsky.feed.post",
            {"text": "a reply", "reply": {"root": ref(first), "parent": ref(first)}},
        )
        nested = await create(
            carol,
            "app.bsky.feed.post",
            {"text": "deeper", "reply": {"root": ref(first), "parent": ref(reply)}},
        )
        quote = await create(
            carol, "app.bsky.feed.post",
            {"text": "quoting", "embed": {"$type": "app.bsky.embed.recordWithMedia",
             "record": {"$type": "app.bsky.embed.record", "record": ref(image)},
             "media": {"$type": "app.bsky.embed.external", "external": {
                 "uri": "https://example.org", "title": "t", "description": ""}}}},
        )  # fmt: skip
        await create(bob, "app.bsky.feed.like", {"subject": ref(first)})
        await create(carol, "app.bsky.feed.like", {"subject": ref(first)})
        await create(carol, "app.bsky.feed.repost", {"subject": ref(link)})
        await create(alice, "app.bsky.feed.threadgate", {"post": image["uri"], "allow": []},
                     rkey=image["uri"].rsplit("/", 1)[-1])  # fmt: skip
        the_list = await create(
            alice,
            "app.bsky.graph.list",
            {"name": "friends", "purpose": "app.bsky.graph.defs#curatelist"},
        )
        await create(
            alice, "app.bsky.graph.listitem", {"subject": bob.did, "list": the_list["uri"]}
        )
        feed_record = await create(
            alice,
            "app.bsky.feed.generator",
            {"did": "did:web:localhost%3A9", "displayName": "Alice's feed"},
        )

        async def settled() -> bool:
            # Events are indexed in order: once the last write is in, every earlier one is.
            feeds = await view(alice, "app.bsky.feed.getActorFeeds", actor=alice.did)
            body = await view(alice, "app.bsky.feed.getTimeline")
            return len(body["feed"]) == 7 and len(feeds["feeds"]) == 1

        await eventually(settled, what="alice's timeline holds everything")

        timeline = await view(alice, "app.bsky.feed.getTimeline", limit=3)
        pages = [timeline]
        while "cursor" in pages[-1]:
            pages.append(
                await view(alice, "app.bsky.feed.getTimeline", limit=3, cursor=pages[-1]["cursor"])
            )
        keys = [
            (i["post"]["uri"], i.get("reason", {}).get("uri")) for p in pages for i in p["feed"]
        ]
        assert len(keys) == len(set(keys)) == 7  # six posts, one of them reposted too
        by_uri = {i["post"]["uri"]: i for p in pages for i in p["feed"] if "reason" not in i}
        by_uri[link["uri"]] = next(i for p in pages for i in p["feed"] if "reason" in i)
        assert by_uri[first["uri"]]["post"]["likeCount"] == 2
        assert by_uri[first["uri"]]["post"]["replyCount"] == 1
        assert by_uri[image["uri"]]["post"]["quoteCount"] == 1
        assert by_uri[image["uri"]]["post"]["embed"]["$type"] == "app.bsky.embed.images#view"
        assert by_uri[image["uri"]]["post"]["viewer"]["replyDisabled"] is False
        assert by_uri[link["uri"]]["reason"]["by"]["did"] == carol.did
        quoted = by_uri[quote["uri"]]["post"]["embed"]
        assert quoted["record"]["record"]["uri"] == image["uri"]
        assert by_uri[nested["uri"]]["reply"]["parent"]["uri"] == reply["uri"]
        assert by_uri[nested["uri"]]["reply"]["root"]["uri"] == first["uri"]

        for name in ("posts_with_replies", "posts_no_replies", "posts_with_media",
                     "posts_and_author_threads", "posts_with_video"):  # fmt: skip
            await view(bob, "app.bsky.feed.getAuthorFeed", actor="alice.test", filter=name)
        media = await view(bob, "app.bsky.feed.getAuthorFeed", actor=alice.did,
                           filter="posts_with_media")  # fmt: skip
        assert [i["post"]["uri"] for i in media["feed"]] == [image["uri"]]
        no_replies = await view(bob, "app.bsky.feed.getAuthorFeed", actor=bob.did,
                                filter="posts_no_replies")  # fmt: skip
        assert [i["post"]["uri"] for i in no_replies["feed"]] == [link["uri"]]

        thread = await view(carol, "app.bsky.feed.getPostThread", uri=first["uri"])
        assert thread["thread"]["replies"][0]["post"]["uri"] == reply["uri"]
        assert thread["thread"]["replies"][0]["replies"][0]["post"]["uri"] == nested["uri"]
        up = await view(carol, "app.bsky.feed.getPostThread", uri=nested["uri"], depth=0)
        assert up["thread"]["parent"]["parent"]["post"]["uri"] == first["uri"]

        posts = await view(bob, "app.bsky.feed.getPosts", uris=[first["uri"], link["uri"]])
        assert [p["uri"] for p in posts["posts"]] == [first["uri"], link["uri"]]
        likes = await view(bob, "app.bsky.feed.getLikes", uri=first["uri"])
        assert {like["actor"]["did"] for like in likes["likes"]} == {bob.did, carol.did}
        reposts = await view(bob, "app.bsky.feed.getRepostedBy", uri=link["uri"])
        assert [a["did"] for a in reposts["repostedBy"]] == [carol.did]
        mine = await view(carol, "app.bsky.feed.getActorLikes", actor=carol.did)
        assert [i["post"]["uri"] for i in mine["feed"]] == [first["uri"]]
        await view(bob, "app.bsky.feed.getActorLikes", 400, actor=carol.did)
        found = await view(bob, "app.bsky.feed.searchPosts", q="PICTURE")
        assert [p["uri"] for p in found["posts"]] == [image["uri"]]
        english = await view(bob, "app.bsky.feed.searchPosts", q="see", lang="en")
        assert [p["uri"] for p in english["posts"]] == [first["uri"]]

        feeds = await view(bob, "app.bsky.feed.getActorFeeds", actor=alice.did)
        assert [f["uri"] for f in feeds["feeds"]] == [feed_record["uri"]]
        generator = await view(bob, "app.bsky.feed.getFeedGenerator", feed=feed_record["uri"])
        assert generator["isOnline"] is False
        several = await view(bob, "app.bsky.feed.getFeedGenerators", feeds=[feed_record["uri"]])
        assert several["feeds"][0]["displayName"] == "Alice's feed"
        # The official PDS reads generator records from the AppView's index.
        record_url = f"{network.appview.url}/xrpc/com.atproto.repo.getRecord"
        _, _, _, collection, rkey = feed_record["uri"].split("/")
        for repo, cid, status in (
            (alice.did, None, 200),
            ("alice.test", feed_record["cid"], 200),
            (alice.did, first["cid"], 400),
            (bob.did, None, 400),
        ):
            params = {"repo": repo, "collection": collection, "rkey": rkey}
            async with network.http.get(
                record_url, params={**params, **({"cid": cid} if cid else {})}
            ) as response:
                answer = await response.json()
                assert response.status == status, answer
            if status == 200:
                assert answer["uri"] == feed_record["uri"] and answer["cid"] == feed_record["cid"]
                assert answer["value"]["displayName"] == "Alice's feed"
            else:
                assert answer["error"] == "RecordNotFound"

        profile = await view(bob, "app.bsky.actor.getProfile", actor="alice.test")
        assert profile["displayName"] == "Alice A."
        assert profile["avatar"].endswith(f"getBlob?did={alice.did}&cid={blob['ref']['$link']}")
        assert (profile["followersCount"], profile["followsCount"], profile["postsCount"]) == (
            2, 2, 2,
        )  # fmt: skip
        assert profile["associated"]["lists"] == 1 and profile["associated"]["feedgens"] == 1
        assert profile["viewer"]["following"] and profile["viewer"]["followedBy"]
        profiles = await view(bob, "app.bsky.actor.getProfiles", actors=[alice.did, "carol.test"])
        assert [p["did"] for p in profiles["profiles"]] == [alice.did, carol.did]
        search = await view(bob, "app.bsky.actor.searchActors", q="ali")
        assert [a["did"] for a in search["actors"]] == [alice.did]
        typeahead = await view(bob, "app.bsky.actor.searchActorsTypeahead", q="alice a")
        assert [a["did"] for a in typeahead["actors"]] == [alice.did]

        follows = await view(bob, "app.bsky.graph.getFollows", actor=alice.did, limit=1)
        more = await view(bob, "app.bsky.graph.getFollows", actor=alice.did,
                          cursor=follows["cursor"])  # fmt: skip
        assert {a["did"] for a in follows["follows"] + more["follows"]} == {bob.did, carol.did}
        followers = await view(bob, "app.bsky.graph.getFollowers", actor=alice.did)
        assert {a["did"] for a in followers["followers"]} == {bob.did, carol.did}
        relationships = await view(
            bob, "app.bsky.graph.getRelationships", actor=alice.did,
            others=[bob.did, "did:plc:unknownunknownunknown"],
        )  # fmt: skip
        assert relationships["relationships"][0]["following"]
        assert relationships["relationships"][1]["notFound"] is True

        notes = await view(bob, "app.bsky.notification.listNotifications")
        reasons = {n["reason"] for n in notes["notifications"]}
        assert reasons == {"follow", "mention", "reply", "repost"}
        assert (await view(bob, "app.bsky.notification.getUnreadCount"))["count"] == 4
        alice_notes = await view(alice, "app.bsky.notification.listNotifications",
                                 reasons=["like"])  # fmt: skip
        assert {n["author"]["did"] for n in alice_notes["notifications"]} == {bob.did, carol.did}
        async with network.http.post(
            f"{bob.pds}/xrpc/app.bsky.notification.updateSeen",
            json={"seenAt": "2099-01-01T00:00:00.000Z"},
            headers={"Authorization": f"Bearer {bob.token}"},
        ) as response:
            assert response.status == 200
        assert (await view(bob, "app.bsky.notification.getUnreadCount"))["count"] == 0
        seen = await view(bob, "app.bsky.notification.listNotifications")
        assert all(n["isRead"] for n in seen["notifications"])

        # Blocks: carol blocks bob; each disappears from the other's reads.
        block = await create(carol, "app.bsky.graph.block", {"subject": bob.did})

        async def blocked() -> bool:
            body = await view(bob, "app.bsky.graph.getBlocks", expect=200)
            mine = await view(carol, "app.bsky.graph.getBlocks")
            return not body["blocks"] and [a["did"] for a in mine["blocks"]] == [bob.did]

        await eventually(blocked, what="the block indexed")
        await view(bob, "app.bsky.feed.getAuthorFeed", 400, actor=carol.did)
        await view(carol, "app.bsky.feed.getAuthorFeed", 400, actor=bob.did)
        carol_thread = await view(carol, "app.bsky.feed.getPostThread", uri=first["uri"])
        assert carol_thread["thread"]["replies"] == []
        carol_view = await view(bob, "app.bsky.actor.getProfile", actor=carol.did)
        assert carol_view["viewer"]["blockedBy"] is True
        timeline = await view(carol, "app.bsky.feed.getTimeline")
        assert all(i["post"]["author"]["did"] != bob.did for i in timeline["feed"])
        # A post quoting the blocked account shows the quote as blocked.
        quoting = await create(
            alice, "app.bsky.feed.post",
            {"text": "quoting bob", "embed": {"$type": "app.bsky.embed.record",
                                              "record": ref(link)}},
        )  # fmt: skip

        async def quote_seen() -> Any:
            body = await view(carol, "app.bsky.feed.getPosts", uris=[quoting["uri"]])
            return body["posts"]

        (seen,) = await eventually(quote_seen, what="the quoting post")
        assert seen["embed"]["record"]["$type"] == "app.bsky.embed.record#viewBlocked"

        # Deletes take a record, its counts and its notifications out of the index.
        await carol.call(
            "com.atproto.repo.deleteRecord",
            {"repo": carol.did, "collection": "app.bsky.graph.block",
             "rkey": block["uri"].rsplit("/", 1)[-1]},
        )  # fmt: skip
        await bob.call(
            "com.atproto.repo.deleteRecord",
            {"repo": bob.did, "collection": "app.bsky.feed.post",
             "rkey": reply["uri"].rsplit("/", 1)[-1]},
        )  # fmt: skip

        async def deleted() -> bool:
            body = await view(alice, "app.bsky.feed.getPosts", uris=[first["uri"]])
            return body["posts"][0]["replyCount"] == 0

        await eventually(deleted, what="the reply's deletion indexed")
        gone = await view(alice, "app.bsky.feed.getPostThread", uri=nested["uri"])
        assert gone["thread"]["parent"]["$type"] == "app.bsky.feed.defs#notFoundPost"


async def test_account_status_hides_and_restores(tmp_path: Path) -> None:
    async with appview_network(tmp_path) as network:
        alice, bob = await accounts(network, "alice", "bob")
        post = await create(bob, "app.bsky.feed.post", {"text": "here today"})
        await create(alice, "app.bsky.graph.follow", {"subject": bob.did})

        async def timeline_size(n: int) -> Any:
            async def check() -> bool:
                body = await view(alice, "app.bsky.feed.getTimeline")
                return len(body["feed"]) == n

            return check

        await eventually(await timeline_size(1), what="bob's post")
        await procedure(bob, "com.atproto.server.deactivateAccount")
        await eventually(await timeline_size(0), what="bob hidden")
        body = await view(alice, "app.bsky.actor.getProfile", 400, actor=bob.did)
        assert body["error"] == "AccountDeactivated"
        await view(alice, "app.bsky.feed.getPosts", uris=[post["uri"]])
        await procedure(bob, "com.atproto.server.activateAccount")
        await eventually(await timeline_size(1), what="bob back")


async def test_backfill_of_an_account_seen_mid_history(tmp_path: Path) -> None:
    """A PDS the relay starts following late: its account's first commit the AppView sees is
    not its first, so the AppView fetches the whole repository from the PDS."""
    async with (
        appview_network(tmp_path) as network,
        running_pds(tmp_path / "pds3", network.plc_url) as pds3,
    ):
        late = await PdsUser.create(network.http, pds3.url, "late.test")
        await create(late, "app.bsky.feed.post", {"text": "before the relay saw me"})
        await create(late, "app.bsky.actor.profile", {"displayName": "Late"}, rkey="self")
        port = pds3.url.rsplit(":", 1)[-1]
        async with network.http.post(
            f"{network.relay.url}/xrpc/com.atproto.sync.requestCrawl",
            json={"hostname": f"localhost:{port}"},
        ) as response:
            assert response.status == 200, await response.text()

        async def following() -> bool:
            return len(network.relay.relay.streams) == 3 and all(
                s.connected for s in network.relay.relay.streams.values()
            )

        await eventually(following, what="the relay follows the third PDS")
        (watcher,) = await accounts(network, "watcher")
        await create(late, "app.bsky.feed.post", {"text": "after"})

        async def both() -> bool:
            async with network.http.get(
                f"{network.appview.url}/xrpc/app.bsky.feed.getAuthorFeed",
                params={"actor": late.did},
            ) as response:
                body = await response.json()
            texts = {i["post"]["record"]["text"] for i in body.get("feed", [])}
            return texts == {"before the relay saw me", "after"}

        await eventually(both, what="the account fetched whole")
        profile = await view(watcher, "app.bsky.actor.getProfile", actor=late.did)
        assert profile["displayName"] == "Late" and profile["handle"] == "late.test"
