"""Mutes, lists, starter packs, threadgates and postgates through the official Python SDK, which
talks only to its own PDS (the PDS passes app.bsky calls to the AppView), on both engines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from atproto import AsyncClient, models
from atproto_client.exceptions import BadRequestError

from tests.appview.network import appview_network, indexed
from tests.appview.test_api import view
from tests.relay.xrpc import PdsUser
from tests.services import eventually

PASSWORD = "hunter2-pw"
MODLIST = "app.bsky.graph.defs#modlist"
CURATELIST = "app.bsky.graph.defs#curatelist"
T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T]], what: str) -> T:
    """`check()` once it no longer fails (the AppView has indexed the change)."""

    async def attempt() -> tuple[T] | None:
        try:
            return (await check(),)
        except (AssertionError, BadRequestError):
            return None

    return (await eventually(attempt, what=what))[0]


async def create(client: AsyncClient, did: str, collection: str, record: dict[str, Any]) -> Any:
    return await client.com.atproto.repo.create_record(
        {"repo": did, "collection": collection,
         "record": {"$type": collection, "createdAt": client.get_current_time_iso(), **record}}
    )  # fmt: skip


async def texts(client: AsyncClient) -> list[str]:
    return [item.post.record.text for item in (await client.get_timeline()).feed]


async def test_mutes_lists_packs_and_gates(tmp_path: Path, database_url: str | None) -> None:
    async with appview_network(tmp_path, database_url) as network:
        pds = network.pdses[0].url
        users = {n: await PdsUser.create(network.http, pds, f"{n}.test") for n in
                 ("alice", "bob", "carol", "dan")}  # fmt: skip
        clients: dict[str, AsyncClient] = {}
        for name, user in users.items():
            await indexed(network, user)
            clients[name] = AsyncClient(base_url=pds)
            await clients[name].login(f"{name}.test", PASSWORD)
        alice, bob, carol, dan = (clients[n] for n in ("alice", "bob", "carol", "dan"))
        did = {name: user.did for name, user in users.items()}
        graph = alice.app.bsky.graph

        for other in ("bob", "carol", "dan"):
            await alice.follow(did[other])
        await bob.send_post("bob speaks")
        carol_post = await carol.send_post("carol speaks")
        await dan.send_post("dan speaks")
        await dan.repost(carol_post.uri, carol_post.cid)
        everything = {"bob speaks", "carol speaks", "dan speaks"}

        async def full() -> None:
            feed = (await alice.get_timeline()).feed
            assert everything <= {i.post.record.text for i in feed}
            assert any(i.reason is not None for i in feed)

        await until(full, "alice's timeline with everything")

        # Muting an account: its posts leave the timeline, and its profile says so.
        await graph.mute_actor({"actor": did["carol"]})
        assert "carol speaks" not in await texts(alice)
        profile = await alice.get_profile(did["carol"])
        assert profile.viewer.muted is True
        assert [m.did for m in (await graph.get_mutes()).mutes] == [did["carol"]]
        await graph.unmute_actor({"actor": did["carol"]})
        assert (await alice.get_profile(did["carol"])).viewer.muted is False

        # Muting only reposts: dan's repost goes, dan's own post stays.
        await graph.mute_actor({"actor": did["dan"], "onlyReposts": True})
        feed = (await alice.get_timeline()).feed
        assert not any(i.reason is not None for i in feed)
        assert {"dan speaks", "carol speaks"} <= {i.post.record.text for i in feed}
        viewer = (await alice.get_profile(did["dan"])).viewer
        assert viewer.muted is False and viewer.muted_only_reposts is True
        await graph.unmute_actor({"actor": did["dan"]})

        # A moderation list with dan on it, muted, then blocked.
        modlist = await create(alice, did["alice"], "app.bsky.graph.list",
                               {"name": "quiet", "purpose": MODLIST})  # fmt: skip
        await create(alice, did["alice"], "app.bsky.graph.listitem",
                     {"list": modlist.uri, "subject": did["dan"]})  # fmt: skip

        async def listed() -> None:
            answer = await graph.get_list({"list": modlist.uri})
            assert [i.subject.did for i in answer.items] == [did["dan"]]
            assert answer.list.list_item_count == 1 and answer.list.purpose == MODLIST

        await until(listed, "the moderation list indexed")
        await graph.mute_actor_list({"list": modlist.uri})
        viewer = (await alice.get_profile(did["dan"])).viewer
        assert viewer.muted is True and viewer.muted_by_list.uri == modlist.uri
        assert "dan speaks" not in await texts(alice)
        assert [lst.uri for lst in (await graph.get_list_mutes()).lists] == [modlist.uri]
        await graph.unmute_actor_list({"list": modlist.uri})
        assert "dan speaks" in await texts(alice)

        await create(alice, did["alice"], "app.bsky.graph.listblock", {"subject": modlist.uri})

        async def blocked() -> None:
            viewer = (await alice.get_profile(did["dan"])).viewer
            assert viewer.blocking_by_list is not None
            assert viewer.blocking_by_list.uri == modlist.uri

        await until(blocked, "the list block indexed")
        assert "dan speaks" not in await texts(alice)
        assert [lst.uri for lst in (await graph.get_list_blocks()).lists] == [modlist.uri]
        with pytest.raises(BadRequestError):
            await alice.get_author_feed(did["dan"])
        assert (await dan.get_profile(did["alice"])).viewer.blocked_by is True

        # A curation list as a feed, and a starter pack made of it.
        curated = await create(alice, did["alice"], "app.bsky.graph.list",
                               {"name": "friends", "purpose": CURATELIST})  # fmt: skip
        for name in ("bob", "carol"):
            await create(alice, did["alice"], "app.bsky.graph.listitem",
                         {"list": curated.uri, "subject": did[name]})  # fmt: skip
        pack = await create(alice, did["alice"], "app.bsky.graph.starterpack",
                            {"name": "Start here", "list": curated.uri})  # fmt: skip

        async def list_feed() -> None:
            answer = await alice.app.bsky.feed.get_list_feed({"list": curated.uri})
            assert {i.post.record.text for i in answer.feed} == {"bob speaks", "carol speaks"}

        await until(list_feed, "the curation list's feed")
        lists = await graph.get_lists({"actor": did["alice"]})
        assert {lst.uri for lst in lists.lists} == {modlist.uri, curated.uri}
        curated_only = await graph.get_lists({"actor": did["alice"], "purposes": ["curatelist"]})
        assert [lst.uri for lst in curated_only.lists] == [curated.uri]

        async def packed() -> None:
            view = await bob.app.bsky.graph.get_starter_pack({"starterPack": pack.uri})
            assert view.starter_pack.list.uri == curated.uri
            sample = {m.subject.did for m in view.starter_pack.list_items_sample}
            assert sample == {did["bob"], did["carol"]}

        await until(packed, "the starter pack indexed")
        basic = await bob.app.bsky.graph.get_starter_packs({"uris": [pack.uri]})
        assert basic.starter_packs[0].list_item_count == 2
        mine = await bob.app.bsky.graph.get_actor_starter_packs({"actor": did["alice"]})
        assert [p.uri for p in mine.starter_packs] == [pack.uri]
        assert (await bob.get_profile(did["alice"])).associated.starter_packs == 1

        # A thread muted: a reply in it no longer notifies.
        root = await bob.send_post("a thread")
        root_ref = models.create_strong_ref(root)
        mine_in_it = await alice.send_post(
            "alice joins", reply_to=models.AppBskyFeedPost.ReplyRef(parent=root_ref, root=root_ref)
        )
        await alice.app.bsky.graph.mute_thread({"root": root.uri})
        parent = models.create_strong_ref(mine_in_it)
        await carol.send_post(
            "carol answers alice",
            reply_to=models.AppBskyFeedPost.ReplyRef(parent=parent, root=root_ref),
        )
        await carol.like(mine_in_it.uri, mine_in_it.cid)
        alone = await alice.send_post("alice alone")
        await carol.like(alone.uri, alone.cid)

        async def notified() -> list[str]:
            notes = (await alice.app.bsky.notification.list_notifications()).notifications
            reasons = [n.reason for n in notes if n.author.did == did["carol"]]
            assert "like" in reasons
            return reasons

        reasons = await until(notified, "carol's like of a post outside the thread")
        assert reasons == ["like"]  # the reply and the like inside the muted thread are gone
        thread = await alice.get_post_thread(root.uri)
        assert thread.thread.post.viewer.thread_muted is True

        # Threadgates: only those bob follows may reply; then alice is followed.
        gated = await bob.send_post("followers of mine only")
        await create(bob, did["bob"], "app.bsky.feed.threadgate",
                     {"post": gated.uri,
                      "allow": [{"$type": "app.bsky.feed.threadgate#followingRule"}]})  # fmt: skip

        async def reply_disabled(client: AsyncClient) -> bool | None:
            posts = (await client.get_posts([gated.uri])).posts
            assert posts and posts[0].viewer.reply_disabled is not None
            value: bool | None = posts[0].viewer.reply_disabled
            return value

        assert await until(lambda: reply_disabled(alice), "the threadgate indexed") is True
        await bob.follow(did["alice"])

        async def allowed() -> None:
            assert await reply_disabled(alice) is False

        await until(allowed, "bob's follow of alice")
        assert await reply_disabled(carol) is True

        # Postgates: bob detaches carol's quote and closes his post to quotes.
        quoted = await bob.send_post("quote me if you dare")
        quote = await carol.send_post(
            "quoting bob",
            embed=models.AppBskyEmbedRecord.Main(record=models.create_strong_ref(quoted)),
        )
        closed = [{"$type": "app.bsky.feed.postgate#disableRule"}]
        await create(bob, did["bob"], "app.bsky.feed.postgate",
                     {"post": quoted.uri, "detachedEmbeddingUris": [quote.uri],
                      "embeddingRules": closed})  # fmt: skip

        async def detached() -> None:
            posts = (await alice.get_posts([quote.uri])).posts
            assert posts
            post = posts[0]
            assert post.embed.record.py_type == "app.bsky.embed.record#viewDetached"

        await until(detached, "the postgate indexed")
        assert (await alice.get_posts([quoted.uri])).posts[0].viewer.embedding_disabled is True
        assert (await bob.get_posts([quoted.uri])).posts[0].viewer.embedding_disabled is False

        # Every answer above in the lexicons' shapes, as the AppView gives them.
        alice_user = users["alice"]
        await graph.mute_actor({"actor": did["carol"]})
        await graph.mute_actor_list({"list": modlist.uri})
        for nsid, params in (
            ("app.bsky.graph.getList", {"list": curated.uri}),
            ("app.bsky.graph.getLists", {"actor": did["alice"]}),
            ("app.bsky.graph.getListBlocks", {}),
            ("app.bsky.graph.getListMutes", {}),
            ("app.bsky.graph.getMutes", {}),
            ("app.bsky.graph.getStarterPack", {"starterPack": pack.uri}),
            ("app.bsky.graph.getStarterPacks", {"uris": [pack.uri]}),
            ("app.bsky.graph.getActorStarterPacks", {"actor": did["alice"]}),
            ("app.bsky.feed.getListFeed", {"list": curated.uri}),
            ("app.bsky.actor.getProfiles", {"actors": [did["carol"], did["dan"]]}),
            ("app.bsky.feed.getPosts", {"uris": [quote.uri, quoted.uri, gated.uri]}),
            ("app.bsky.feed.getPostThread", {"uri": root.uri}),
            ("app.bsky.graph.getRelationships", {"actor": did["dan"], "others": [did["alice"]]}),
            ("app.bsky.notification.listNotifications", {}),
        ):
            await view(alice_user, nsid, **params)
