"""Bookmarks (`app.bsky.bookmark.*`) through a PDS's proxy, on SQLite and Postgres: private to
the viewer, idempotent, counted on the post (`bookmarkCount`, also when the count was cached),
marked in the viewer's state, paged newest first, and shown as not found or blocked when the
post is gone or its author is blocked; bad input changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.appview.network import appview_network
from tests.appview.test_api import accounts, create, ref, view
from tests.appview.test_threads_v2 import write
from tests.relay.xrpc import PdsUser
from tests.services import eventually

CREATE = "app.bsky.bookmark.createBookmark"
DELETE = "app.bsky.bookmark.deleteBookmark"
GET = "app.bsky.bookmark.getBookmarks"


async def call(user: PdsUser, nsid: str, body: dict[str, Any], expect: int = 200) -> Any:
    async with user.http.post(
        f"{user.pds}/xrpc/{nsid}", json=body, headers={"Authorization": f"Bearer {user.token}"}
    ) as response:
        text = await response.text()
        assert response.status == expect, (nsid, response.status, text)
        return await response.json() if expect != 200 else None


async def counted(user: PdsUser, uri: str) -> tuple[int, bool]:
    (post,) = (await view(user, "app.bsky.feed.getPosts", uris=[uri]))["posts"]
    return post["bookmarkCount"], post["viewer"]["bookmarked"]


async def test_bookmarks(tmp_path: Path, database_url: str | None) -> None:
    async with appview_network(tmp_path, database_url) as network:
        alice, bob, carol = await accounts(network, "alice", "bob", "carol")
        first = await write(network, alice, "app.bsky.feed.post", {"text": "keep this"})
        second = await write(network, carol, "app.bsky.feed.post", {"text": "and this"})
        # The counts are read (and cached) before anything is bookmarked.
        assert await counted(bob, first["uri"]) == (0, False)

        await call(bob, CREATE, ref(first))
        await call(bob, CREATE, ref(first))  # again: nothing changes
        assert await counted(bob, first["uri"]) == (1, True)
        assert await counted(alice, first["uri"]) == (1, False)
        await call(alice, CREATE, ref(first))
        assert await counted(carol, first["uri"]) == (2, False)
        await call(bob, CREATE, ref(second))

        page = await view(bob, GET, limit=1)
        assert [b["subject"] for b in page["bookmarks"]] == [ref(second)]
        rest = await view(bob, GET, limit=1, cursor=page["cursor"])
        assert [b["subject"] for b in rest["bookmarks"]] == [ref(first)]
        item = rest["bookmarks"][0]["item"]
        assert item["$type"] == "app.bsky.feed.defs#postView"
        assert item["uri"] == first["uri"] and item["viewer"]["bookmarked"] is True
        assert "createdAt" in rest["bookmarks"][0]
        last = await view(bob, GET, limit=1, cursor=rest["cursor"])
        assert last["bookmarks"] == [] and "cursor" not in last
        # Private: carol sees none of them.
        assert (await view(carol, GET))["bookmarks"] == []

        # Only posts can be bookmarked; bad input is refused and changes nothing.
        like = await create(carol, "app.bsky.feed.like", {"subject": ref(first)})
        refused = await call(bob, CREATE, ref(like), expect=400)
        assert refused["error"] == "UnsupportedCollection"
        refused = await call(bob, DELETE, {"uri": like["uri"]}, expect=400)
        assert refused["error"] == "UnsupportedCollection"
        for body in ({"uri": first["uri"]}, {"uri": "nope", "cid": first["cid"]}, {}):
            assert (await call(bob, CREATE, body, expect=400))["error"] == "InvalidRequest"
        assert len((await view(bob, GET))["bookmarks"]) == 2
        async with network.http.get(f"{network.appview.url}/xrpc/{GET}") as response:
            assert response.status == 401

        # The author blocks the reader: the bookmark stays, its post shows as blocked.
        await write(network, carol, "app.bsky.graph.block", {"subject": bob.did})
        items = {b["subject"]["uri"]: b["item"] for b in (await view(bob, GET))["bookmarks"]}
        assert items[second["uri"]]["$type"] == "app.bsky.feed.defs#blockedPost"
        assert items[second["uri"]]["author"]["viewer"]["blockedBy"] is True
        # A deleted post: not found.
        await alice.call(
            "com.atproto.repo.deleteRecord",
            {"repo": alice.did, "collection": "app.bsky.feed.post",
             "rkey": first["uri"].rsplit("/", 1)[-1]},
        )  # fmt: skip

        async def gone() -> bool:
            found = {b["subject"]["uri"]: b["item"] for b in (await view(bob, GET))["bookmarks"]}
            return bool(found[first["uri"]].get("notFound"))

        await eventually(gone, what="the deleted post shown as not found")

        await call(bob, DELETE, {"uri": second["uri"]})
        await call(bob, DELETE, {"uri": second["uri"]})  # again: nothing changes
        assert [b["subject"]["uri"] for b in (await view(bob, GET))["bookmarks"]] == [first["uri"]]
        # The count follows the deletion (carol reads her own post).
        assert await counted(carol, second["uri"]) == (0, False)
