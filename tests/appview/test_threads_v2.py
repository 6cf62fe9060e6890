"""`app.bsky.unspecced.getPostThreadV2` and `getPostThreadOtherV2` as the official app calls
them, through a PDS's proxy (and anonymously, straight to the AppView), on SQLite and Postgres:
items and depths, the OP thread, sorting and its bumps, branching and depth limits, blocks
(the viewer's and between a reply and its parent), mutes, threadgate-hidden replies,
pushpins and authors hidden from signed-out readers; every answer checked against its lexicon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.appview.network import Network, appview_network
from tests.appview.test_api import CATALOG, accounts, create, ref, view
from tests.relay.xrpc import PdsUser
from tests.services import eventually

V2 = "app.bsky.unspecced.getPostThreadV2"
OTHER = "app.bsky.unspecced.getPostThreadOtherV2"
POST = "app.bsky.feed.post"


async def write(
    network: Network, user: PdsUser, collection: str, record: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """Create a record and wait until the AppView has indexed it (replies then arrive in the
    order they were written, which the `oldest` and `newest` sorts see)."""
    answer: dict[str, Any] = await create(user, collection, record, **extra)
    db = network.appview.appview.db
    assert db is not None

    async def indexed() -> bool:
        return await db.fetchrow("SELECT 1 FROM record WHERE uri = ?", answer["uri"]) is not None

    await eventually(indexed, what=f"{answer['uri']} indexed")
    return answer


async def reply(
    network: Network, user: PdsUser, text: str, root: dict[str, Any], parent: dict[str, Any]
) -> dict[str, Any]:
    record = {"text": text, "reply": {"root": ref(root), "parent": ref(parent)}}
    return await write(network, user, POST, record)


async def hide_replies(
    network: Network, author: PdsUser, root: dict[str, Any], hidden: list[str]
) -> None:
    """The root's threadgate, hiding `hidden` replies from everyone but their authors."""
    rkey = root["uri"].rsplit("/", 1)[-1]
    gate = {"post": root["uri"], "hiddenReplies": hidden}
    await write(network, author, "app.bsky.feed.threadgate", gate, rkey=rkey)


async def send(user: PdsUser, nsid: str, body: dict[str, Any]) -> None:
    async with user.http.post(
        f"{user.pds}/xrpc/{nsid}", json=body, headers={"Authorization": f"Bearer {user.token}"}
    ) as response:
        assert response.status == 200, await response.text()


async def anonymous(network: Network, nsid: str, **params: Any) -> dict[str, Any]:
    """A signed-out read, straight from the AppView."""
    query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
    async with network.http.get(f"{network.appview.url}/xrpc/{nsid}", params=query) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
    CATALOG.validate_output(nsid, body)
    return body


def shape(thread: list[dict[str, Any]], names: dict[str, str]) -> list[tuple[str, int, str]]:
    """(name, depth, kind) of each item, names looked up by URI."""
    return [
        (names.get(i["uri"], i["uri"]), i["depth"], i["value"]["$type"].rpartition("#")[2])
        for i in thread
    ]


def value(thread: list[dict[str, Any]], uri: str) -> dict[str, Any]:
    (item,) = [i for i in thread if i["uri"] == uri]
    found: dict[str, Any] = item["value"]
    return found


async def test_thread_v2(tmp_path: Path, database_url: str | None) -> None:
    async with appview_network(tmp_path, database_url) as network:
        alice, bob, carol, dan, erin = await accounts(
            network, "alice", "bob", "carol", "dan", "erin"
        )
        await write(network, bob, "app.bsky.graph.follow", {"subject": carol.did})
        block = await write(network, carol, "app.bsky.graph.block", {"subject": dan.did})
        hidden_from_anonymous = {
            "$type": "com.atproto.label.defs#selfLabels",
            "values": [{"val": "!no-unauthenticated"}],
        }
        await write(
            network, erin, "app.bsky.actor.profile", {"labels": hidden_from_anonymous},
            rkey="self",
        )  # fmt: skip
        await send(bob, "app.bsky.graph.muteActor", {"actor": erin.did})

        root = await write(network, alice, POST, {"text": "root"})
        a1 = await reply(network, alice, "alice goes on", root, root)
        b1 = await reply(network, bob, "bob answers", root, root)
        a2 = await reply(network, alice, "alice goes on again", root, a1)
        c1 = await reply(network, carol, "carol answers", root, root)
        b2 = await reply(network, bob, "bob answers alice", root, a1)
        d1 = await reply(network, dan, "dan answers bob", root, b1)
        d2 = await reply(network, dan, "dan answers carol", root, c1)
        e1 = await reply(network, erin, "erin answers", root, root)
        d3 = await reply(network, dan, "dan answers too", root, root)
        pin = await reply(network, dan, " \N{PUSHPIN} ", root, root)
        c2 = await reply(network, carol, "carol again", root, root)
        await hide_replies(network, alice, root, [c2["uri"]])
        for liker in (carol, dan, erin):
            await write(network, liker, "app.bsky.feed.like", {"subject": ref(b1)})
        await write(network, alice, "app.bsky.feed.like", {"subject": ref(c1)})
        names = {
            p["uri"]: name
            for name, p in {
                "root": root, "a1": a1, "a2": a2, "b1": b1, "b2": b2, "c1": c1, "c2": c2,
                "d1": d1, "d2": d2, "d3": d3, "e1": e1, "pin": pin,
            }.items()
        }  # fmt: skip

        # Signed out: erin is not shown at all; c2 (hidden by the threadgate) and the pushpin
        # are "other" replies; dan's reply to carol, who blocks him, is left out.
        body = await anonymous(network, V2, anchor=root["uri"])
        assert body["hasOtherReplies"] is True
        assert body["threadgate"]["record"]["hiddenReplies"] == [c2["uri"]]
        assert body["threadgate"]["lists"] == []
        assert shape(body["thread"], names) == [
            ("root", 0, "threadItemPost"),
            ("a1", 1, "threadItemPost"),
            ("a2", 2, "threadItemPost"),
            ("b2", 2, "threadItemPost"),
            ("b1", 1, "threadItemPost"),
            ("d1", 2, "threadItemPost"),
            ("c1", 1, "threadItemPost"),
            ("d3", 1, "threadItemPost"),
        ]
        # The OP thread: root, a1, a2; everything else is off it.
        for n, name in enumerate((root, a1, a2), start=1):
            item = value(body["thread"], name["uri"])
            assert (item["opThread"], item["opThreadPostIndex"], item["opThreadPostCount"]) == (
                True, n, 3,
            )  # fmt: skip
        assert value(body["thread"], b1["uri"])["opThread"] is False
        assert "opThreadPostIndex" not in value(body["thread"], b1["uri"])
        assert value(body["thread"], root["uri"])["moreReplies"] == 0
        assert value(body["thread"], b1["uri"])["post"]["likeCount"] == 3

        # The order of siblings after the OP thread: oldest, newest, and top (likes, the
        # root author's like counting half as much again).
        orders = {}
        for sort in ("oldest", "newest", "top"):
            sorted_body = await anonymous(network, V2, anchor=root["uri"], sort=sort)
            orders[sort] = [names[i["uri"]] for i in sorted_body["thread"] if i["depth"] == 1]
        assert orders == {
            "oldest": ["a1", "b1", "c1", "d3"],
            "newest": ["a1", "d3", "c1", "b1"],
            "top": ["a1", "c1", "b1", "d3"],
        }

        # Below the anchor's own replies, `branchingFactor` of each level are kept; at the
        # last level asked for, `moreReplies` counts what is not shown.
        narrow = await anonymous(network, V2, anchor=root["uri"], branchingFactor=1)
        assert [names[i["uri"]] for i in narrow["thread"] if i["depth"] == 2] == ["a2", "d1"]
        assert value(narrow["thread"], a1["uri"])["moreReplies"] == 1
        shallow = await anonymous(network, V2, anchor=root["uri"], below=1)
        assert max(i["depth"] for i in shallow["thread"]) == 1
        assert value(shallow["thread"], a1["uri"])["moreReplies"] == 2
        alone = await anonymous(network, V2, anchor=root["uri"], below=0)
        assert shape(alone["thread"], names) == [("root", 0, "threadItemPost")]

        # Signed in as bob: his own reply and carol's (he follows her) come up first after
        # the OP thread whatever the order; erin, whom he mutes, is an "other" reply.
        mine = await view(bob, V2, anchor=root["uri"], sort="newest")
        assert [names[i["uri"]] for i in mine["thread"] if i["depth"] == 1] == [
            "a1", "b1", "c1", "d3",
        ]  # fmt: skip
        assert value(mine["thread"], b1["uri"])["post"]["author"]["handle"] == "bob.test"
        others = await view(bob, OTHER, anchor=root["uri"])
        assert shape(others["thread"], names) == [
            ("pin", 1, "threadItemPost"),
            ("c2", 1, "threadItemPost"),
            ("e1", 1, "threadItemPost"),
        ]
        assert value(others["thread"], c2["uri"])["hiddenByThreadgate"] is True
        assert value(others["thread"], e1["uri"])["mutedByViewer"] is True
        anonymous_others = await anonymous(network, OTHER, anchor=root["uri"])
        assert [names[i["uri"]] for i in anonymous_others["thread"]] == ["pin", "c2"]
        # Carol sees her own reply where she put it: the threadgate hides it from others.
        carols = await view(carol, V2, anchor=root["uri"])
        assert c2["uri"] in [i["uri"] for i in carols["thread"]]
        # ... and blocks dan: his replies are gone for her, and a thread anchored on one
        # is only the block.
        assert d1["uri"] not in [i["uri"] for i in carols["thread"]]
        blocked = await view(carol, V2, anchor=d1["uri"])
        assert shape(blocked["thread"], names) == [("d1", 0, "threadItemBlocked")]
        assert blocked["thread"][0]["value"]["author"] == {
            "did": dan.did, "viewer": {"blockedBy": False, "blocking": block["uri"]},
        }  # fmt: skip

        # Anchored lower: the parents come first, from the top, with negative depths.
        deep = await view(bob, V2, anchor=a2["uri"])
        assert shape(deep["thread"], names)[:3] == [
            ("root", -2, "threadItemPost"),
            ("a1", -1, "threadItemPost"),
            ("a2", 0, "threadItemPost"),
        ]
        flat = await view(bob, V2, anchor=a2["uri"], above=False)
        assert shape(flat["thread"], names) == [("a2", 0, "threadItemPost")]
        # A parent whose author and the reply's author block each other stops the chain.
        cut = await anonymous(network, V2, anchor=d2["uri"])
        assert shape(cut["thread"], names) == [
            ("c1", -1, "threadItemBlocked"),
            ("d2", 0, "threadItemPost"),
        ]
        # Erin asks not to be shown to signed-out readers.
        erins = await anonymous(network, V2, anchor=e1["uri"])
        assert shape(erins["thread"], names) == [
            ("root", -1, "threadItemPost"),
            ("e1", 0, "threadItemNoUnauthenticated"),
        ]
        # A post named with its author's handle; a post that is not there.
        by_handle = f"at://alice.test/{POST}/{a1['uri'].rsplit('/', 1)[-1]}"
        named = await view(bob, V2, anchor=by_handle, below=0)
        assert shape(named["thread"], names)[-1] == ("a1", 0, "threadItemPost")
        missing = f"at://{alice.did}/{POST}/3jzfcijpj2z2a"
        gone = await view(bob, V2, anchor=missing)
        assert gone == {
            "thread": [{"uri": missing, "depth": 0,
                        "value": {"$type": "app.bsky.unspecced.defs#threadItemNotFound"}}],
            "hasOtherReplies": False,
        }  # fmt: skip
        assert (await view(bob, OTHER, anchor=missing)) == {"thread": []}

        # Bad parameters are refused before anything is read.
        for params in ({"anchor": "not a uri"}, {"anchor": root["uri"], "below": 21},
                       {"anchor": root["uri"], "branchingFactor": -1}, {}):  # fmt: skip
            answer = await view(bob, V2, 400, **params)
            assert answer["error"] == "InvalidRequest"
