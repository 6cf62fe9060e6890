"""The official TypeScript client (`@atproto/api`) reads a timeline, a thread, a profile and
notifications through Strata's PDS, which proxies them to Strata's AppView; the client checks
each answer against the lexicons."""

from __future__ import annotations

import json
from pathlib import Path

from tests.appview.network import appview_network
from tests.appview.test_api import accounts, create, ref, view
from tests.interop.peers import require_peers, run_node
from tests.services import eventually

CLIENT = Path(__file__).with_name("timeline_client.mjs")


async def test_official_client_reads_the_timeline(tmp_path: Path) -> None:
    require_peers()
    async with appview_network(tmp_path) as network:
        alice, bob = await accounts(network, "alice", "bob")
        await create(alice, "app.bsky.graph.follow", {"subject": bob.did})
        await create(bob, "app.bsky.graph.follow", {"subject": alice.did})
        post = await create(bob, "app.bsky.feed.post", {"text": "from bob"})
        reply = {"root": ref(post), "parent": ref(post)}
        await create(alice, "app.bsky.feed.post", {"text": "alice answers", "reply": reply})
        await create(alice, "app.bsky.feed.repost", {"subject": ref(post)})

        async def ready() -> bool:
            body = await view(alice, "app.bsky.feed.getTimeline")
            return len(body["feed"]) == 3

        await eventually(ready, what="alice's timeline")
        result = await run_node(CLIENT, alice.pds, "alice.test", "hunter2-pw", timeout=45)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["ok"], (report, result.stderr[-2000:])
        assert sorted(report["timeline"]) == ["alice answers", "from bob", "from bob"]
        assert "app.bsky.feed.defs#reasonRepost" in report["reasons"]
        assert report["thread"] == ["alice answers"]
        assert report["profile"] == {"handle": "alice.test", "followsCount": 1,
                                     "followersCount": 1}  # fmt: skip
        assert report["notifications"] == ["follow"]
