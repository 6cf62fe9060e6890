"""The official TypeScript client (`@atproto/api`) makes the calls the official app makes in
normal use against a Strata network (PDSes proxying to Strata's AppView, a Strata labeler as
the report service): threads V2, bookmarks, notification preferences and push registration,
suggestions, known followers, quotes, feeds, trending topics, configuration, a report with no
proxy header and a service-token upload. The client checks each answer against the lexicons."""

from __future__ import annotations

import json
from pathlib import Path

from strata.labeler.app import create_labeler_app
from strata.labeler.service import Labeler
from strata.pds.config import AppView
from strata.serve import listening
from tests.appview.network import appview_network
from tests.appview.test_api import accounts, ref
from tests.appview.test_threads_v2 import hide_replies, reply, write
from tests.interop.peers import require_peers, run_node
from tests.services import free_port

CLIENT = Path(__file__).with_name("app_client.mjs")
POST = "app.bsky.feed.post"


async def test_official_client_makes_the_apps_calls(tmp_path: Path) -> None:
    require_peers()
    port = free_port()
    reports = AppView(f"http://127.0.0.1:{port}", f"did:web:localhost%3A{port}")
    async with appview_network(tmp_path, report_service=reports) as network:
        assert reports.did is not None
        labeler = Labeler(reports.did, tmp_path / "labeler")
        app = create_labeler_app(labeler, (network.plc_url,), dev=True)
        async with listening(app, "127.0.0.1", port):
            alice, bob, carol, dan = await accounts(network, "alice", "bob", "carol", "dan")
            for follower, subject in ((alice, bob), (alice, carol), (bob, dan), (carol, dan),
                                      (carol, bob)):  # fmt: skip
                await write(network, follower, "app.bsky.graph.follow", {"subject": subject.did})
            root = await write(network, alice, POST, {"text": "what do you think?"})
            await reply(network, bob, "yes", root, root)
            hidden = await reply(network, carol, "no", root, root)
            await hide_replies(network, alice, root, [hidden["uri"]])
            quoted = await write(network, bob, POST, {"text": "quote me"})
            embed = {"$type": "app.bsky.embed.record", "record": ref(quoted)}
            await write(network, carol, POST, {"text": "nice", "embed": embed})
            liked = await write(network, dan, POST, {"text": "dan's"})
            await write(network, bob, "app.bsky.feed.like", {"subject": ref(liked)})
            await write(network, alice, "app.bsky.feed.generator",
                        {"did": "did:web:localhost%3A9", "displayName": "Cats"})  # fmt: skip

            named = {"root": root["uri"], "quoted": ref(quoted), "friend": bob.did,
                     "pds": network.pdses[0].pds.config.service_did}  # fmt: skip
            result = await run_node(
                CLIENT, alice.pds, "alice.test", "hunter2-pw", network.appview.did,
                json.dumps(named), timeout=45,
            )  # fmt: skip
            report = json.loads(result.stdout.strip().splitlines()[-1])
            assert report["ok"], (report, result.stderr[-2000:])
            post = "app.bsky.unspecced.defs#threadItemPost"
            assert report["thread"] == [[0, post, "what do you think?"], [1, post, "yes"]]
            assert report["hasOtherReplies"] is True and report["other"] == [[1, True]]
            assert report["threadgate"] is not None
            assert report["bookmarks"] == [quoted["uri"]]
            assert report["bookmarked"] == [1, True] and report["bookmarksAfter"] == 0
            following_only = {"include": "follows", "list": True, "push": False}
            assert report["putReply"] == report["preferences"] == following_only
            assert report["suggestions"] == ["dan.test"]
            assert report["similar"] == ["dan.test"]
            assert report["known"] == ["carol.test"]
            assert report["quotes"] == ["nice"]
            assert report["popular"] == ["Cats"] and report["suggestedFeeds"] == 1
            assert report["trending"] == {"topics": [], "suggested": []}
            assert report["config"] == {"checkEmailConfirmed": False, "topicsEnabled": False}
            assert report["reportedBy"] == alice.did
            assert [r["reportedBy"] for r in labeler.store.reports(None, 10)] == [alice.did]
            assert report["uploaded"] == ["video/mp4", 4096]
