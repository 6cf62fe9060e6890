"""The app.bsky API through the Python SDK, talking only to its own PDS, which proxies to the
AppView: accounts on two PDSes follow each other and post, and every read parses with the
SDK's models."""

from __future__ import annotations

from pathlib import Path

from atproto import AsyncClient, models
from atproto_client.exceptions import AtProtocolError

from tests.appview.network import appview_network, indexed
from tests.feedgen.services import running_feedgen
from tests.relay.xrpc import PdsUser
from tests.services import eventually

PASSWORD = "hunter2-pw"


async def test_timeline_profile_thread_through_the_pds(
    tmp_path: Path, database_url: str | None
) -> None:
    async with appview_network(tmp_path, database_url) as network:
        pds1, pds2 = (p.url for p in network.pdses)
        users = {
            name: await PdsUser.create(network.http, pds, f"{name}.test")
            for name, pds in (("alice", pds1), ("bob", pds1), ("carol", pds2))
        }
        for user in users.values():
            await indexed(network, user)
        clients: dict[str, AsyncClient] = {}
        for name, user in users.items():
            client = AsyncClient(base_url=user.pds)
            await client.login(f"{name}.test", PASSWORD)
            clients[name] = client
        alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]

        await alice.follow(users["bob"].did)
        await alice.follow(users["carol"].did)
        await bob.follow(users["alice"].did)
        await alice.send_post("hello from alice")
        bob_post = await bob.send_post("bob here, on the first PDS")
        carol_post = await carol.send_post("carol, writing from the second PDS")
        root = models.create_strong_ref(bob_post)
        await alice.send_post(
            "replying to bob",
            reply_to=models.AppBskyFeedPost.ReplyRef(parent=root, root=root),
        )
        await alice.like(carol_post.uri, carol_post.cid)
        await bob.repost(carol_post.uri, carol_post.cid)

        async def timeline() -> models.AppBskyFeedGetTimeline.Response | None:
            answer = await alice.get_timeline()
            liked = [i for i in answer.feed if i.post.viewer and i.post.viewer.like]
            return answer if len(answer.feed) >= 4 and liked else None

        feed = await eventually(timeline, what="alice's timeline")
        texts = {item.post.record.text for item in feed.feed}
        assert {"hello from alice", "bob here, on the first PDS",
                "carol, writing from the second PDS", "replying to bob"} <= texts  # fmt: skip
        reply = next(i for i in feed.feed if i.post.record.text == "replying to bob")
        assert reply.reply is not None and reply.reply.parent.uri == bob_post.uri
        liked = next(i for i in feed.feed if i.post.uri == carol_post.uri)
        assert liked.post.viewer is not None and liked.post.viewer.like is not None

        async def reposted() -> models.AppBskyFeedGetAuthorFeed.Response | None:
            answer = await carol.get_author_feed(users["bob"].did)
            return answer if any(i.reason is not None for i in answer.feed) else None

        bob_feed = await eventually(reposted, what="bob's repost in his author feed")
        assert {i.post.uri for i in bob_feed.feed} == {bob_post.uri, carol_post.uri}
        repost = next(i for i in bob_feed.feed if i.reason is not None)
        assert repost.reason.by.did == users["bob"].did

        thread = await carol.get_post_thread(bob_post.uri)
        assert thread.thread.post.uri == bob_post.uri
        assert [r.post.record.text for r in thread.thread.replies] == ["replying to bob"]

        profile = await carol.get_profile("bob.test")
        assert profile.did == users["bob"].did and profile.handle == "bob.test"
        assert profile.followers_count == 1 and profile.follows_count == 1
        assert profile.posts_count == 1
        assert profile.viewer is not None and profile.viewer.following is None
        alice_view = await bob.get_profile(users["alice"].did)
        assert alice_view.viewer is not None and alice_view.viewer.followed_by is not None

        # A custom feed: the feed generator's "following" feed, published in alice's repository.
        async with running_feedgen(
            tmp_path / "feedgen", network.plc_url, network.relay.url, users["alice"].did
        ) as feedgen:
            await alice.com.atproto.repo.put_record(
                models.ComAtprotoRepoPutRecord.Data(
                    repo=users["alice"].did,
                    collection="app.bsky.feed.generator",
                    rkey="following",
                    record=models.AppBskyFeedGenerator.Record(
                        did=feedgen.feedgen.config.did,
                        display_name="Following",
                        created_at=alice.get_current_time_iso(),
                    ),
                )
            )
            await bob.send_post("after the feed generator started")

            async def custom_feed() -> models.AppBskyFeedGetFeed.Response | None:
                try:
                    answer = await alice.app.bsky.feed.get_feed({"feed": feedgen.feed("following")})
                except AtProtocolError:
                    return None
                texts = {i.post.record.text for i in answer.feed}
                return answer if "after the feed generator started" in texts else None

            # The feed generator read the relay from the start: everything bob and carol wrote.
            feed = await eventually(custom_feed, what="alice's custom feed")
            texts = [i.post.record.text for i in feed.feed]
            assert texts[0] == "after the feed generator started"
            assert {"bob here, on the first PDS", "carol, writing from the second PDS"} <= set(
                texts
            )
            assert all(i.post.author.did != users["alice"].did for i in feed.feed)
            generator = await carol.app.bsky.feed.get_feed_generator(
                {"feed": feedgen.feed("following")}
            )
            assert generator.is_online and generator.view.display_name == "Following"

        notes = await bob.app.bsky.notification.list_notifications()
        assert {n.reason for n in notes.notifications} == {"follow", "reply"}
        unread = await bob.app.bsky.notification.get_unread_count()
        assert unread.count == 2
