"""A Strata labeler end to end, with real services on loopback: an account made a labeler with
`strata labeler setup`, labels it emits reaching an AppView (checked against the labeler's key,
a forged one refused and counted) and carried by views through the PDS, negations, self-labels,
the labeler's own API, and a report reaching it through the reporter's PDS."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

from strata.core.crypto import K256Keypair
from strata.core.label import new_label, sign_label
from strata.labeler.app import create_labeler_app
from strata.labeler.service import Labeler
from strata.pds.config import AppView
from strata.pds.sequencer import iso_now
from tests.migration.network import strata_outbox_code
from tests.relay.xrpc import PdsUser
from tests.services import (
    eventually,
    free_port,
    running_appview,
    running_pds,
    running_plc,
    running_relay,
    serving,
)


def refused(labeler: str, reason: str) -> float:
    labels = {"labeler": labeler, "reason": reason}
    return REGISTRY.get_sample_value("strata_appview_labels_rejected_total", labels) or 0.0


async def strata(*args: str) -> str:
    """Run the `strata` command; its output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "strata", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_a_labeler_from_setup_to_views(tmp_path: Path) -> None:
    appview_port = free_port()
    appview_url = f"http://127.0.0.1:{appview_port}"
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url, appviews=(AppView(appview_url),)) as pds,
        running_relay(tmp_path / "relay", plc.url, crawl=(pds.url,)) as relay,
        aiohttp.ClientSession() as http,
    ):
        alice = await PdsUser.create(http, pds.url, "alice.test")
        mod = await PdsUser.create(http, pds.url, "mod.test")
        # The account becomes a labeler: its key and address in its DID document, its label
        # values in its repository.
        labeler = Labeler(mod.did, tmp_path / "labeler")
        async with serving(create_labeler_app(labeler, (plc.url,), dev=True)) as labeler_url:
            async with http.post(
                f"{pds.url}/xrpc/com.atproto.identity.requestPlcOperationSignature",
                headers={"Authorization": f"Bearer {mod.token}"},
            ) as response:
                assert response.status == 200
            code = strata_outbox_code(tmp_path / "pds", mod.did)
            await strata(
                "labeler", "setup", "--pds", pds.url, "--identifier", "mod.test",
                "--password", "hunter2-pw", "--labeler-url", labeler_url,
                "--data-dir", str(tmp_path / "labeler"), "--plc-token", code,
                "--value", "spam", "--value", "!warn",
            )  # fmt: skip
            async with http.get(f"{plc.url}/{mod.did}") as response:
                document = await response.json()
            assert {s["id"]: s["serviceEndpoint"] for s in document["service"]}[
                "#atproto_labeler"
            ] == labeler_url
            labeled = await alice.call(
                "com.atproto.repo.createRecord",
                {"repo": alice.did, "collection": "app.bsky.feed.post",
                 "record": {"text": "buy now", "createdAt": iso_now()}},
            )  # fmt: skip
            selfish = await alice.call(
                "com.atproto.repo.createRecord",
                {"repo": alice.did, "collection": "app.bsky.feed.post",
                 "record": {"text": "spoilers", "createdAt": iso_now(),
                            "labels": {"$type": "com.atproto.label.defs#selfLabels",
                                       "values": [{"val": "spoiler"}]}}},
            )  # fmt: skip
            async with running_appview(
                tmp_path / "appview", plc.url, (relay.url,), port=appview_port,
                labelers=(mod.did,),
            ):  # fmt: skip
                await run_checks(
                    http, alice, mod, labeler, labeled, selfish, labeler_url, tmp_path / "labeler"
                )


async def get_posts(
    http: aiohttp.ClientSession, user: PdsUser, uris: list[str], accept: str | None = None
) -> tuple[dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {user.token}"}
    if accept is not None:
        headers["atproto-accept-labelers"] = accept
    async with http.get(
        f"{user.pds}/xrpc/app.bsky.feed.getPosts", params=[("uris", u) for u in uris],
        headers=headers,
    ) as response:  # fmt: skip
        assert response.status == 200, await response.text()
        return {p["uri"]: p for p in (await response.json())["posts"]}, response.headers


async def run_checks(
    http: aiohttp.ClientSession,
    alice: PdsUser,
    mod: PdsUser,
    labeler: Labeler,
    labeled: dict[str, Any],
    selfish: dict[str, Any],
    labeler_url: str,
    labeler_dir: Path,
) -> None:
    labeler.label(labeled["uri"], "spam", cid=labeled["cid"])
    labeler.label(alice.did, "!warn")

    async def shown() -> dict[str, Any] | None:
        posts, _ = await get_posts(http, mod, [labeled["uri"], selfish["uri"]])
        post = posts.get(labeled["uri"])
        return posts if post and post["labels"] and post["author"]["labels"] else None

    posts = await eventually(shown, what="the labels in the AppView's views")
    post = posts[labeled["uri"]]
    assert [(lb["src"], lb["val"], lb.get("cid")) for lb in post["labels"]] == [
        (mod.did, "spam", labeled["cid"])
    ]
    assert [lb["val"] for lb in post["author"]["labels"]] == ["!warn"]
    spoiler = posts[selfish["uri"]]["labels"]
    assert [(lb["src"], lb["val"]) for lb in spoiler] == [(alice.did, "spoiler")]
    _, headers = await get_posts(http, mod, [labeled["uri"]])
    assert headers["atproto-content-labelers"] == mod.did
    # A request that names other labelers sees none of these labels.
    posts, headers = await get_posts(http, mod, [labeled["uri"]], "did:plc:someoneelse;redact")
    assert posts[labeled["uri"]]["labels"] == []
    assert headers["atproto-content-labelers"] == "did:plc:someoneelse;redact"

    # A forged label (another key, in the labeler's name) is refused and counted.
    before = refused(mod.did, "bad-signature")
    forged = sign_label(new_label(mod.did, labeled["uri"], "forged", iso_now()),
                        K256Keypair.generate())  # fmt: skip
    seq, frame = labeler.store.add_label(forged)
    labeler.broadcaster.publish([(seq, frame)])
    labeler.label(labeled["uri"], "after-forgery")

    async def moved_on() -> dict[str, Any] | None:
        posts, _ = await get_posts(http, mod, [labeled["uri"]])
        vals = [lb["val"] for lb in posts[labeled["uri"]]["labels"]]
        return posts if "after-forgery" in vals else None

    posts = await eventually(moved_on, what="the label after the forgery")
    assert "forged" not in [lb["val"] for lb in posts[labeled["uri"]]["labels"]]
    assert refused(mod.did, "bad-signature") == before + 1

    # A negation takes a label back.
    labeler.label(labeled["uri"], "spam", neg=True)

    async def negated() -> bool:
        posts, _ = await get_posts(http, mod, [labeled["uri"]])
        return "spam" not in [lb["val"] for lb in posts[labeled["uri"]]["labels"]]

    await eventually(negated, what="the negation")

    # The labeler's own API.
    async with http.get(
        f"{labeler_url}/xrpc/com.atproto.label.queryLabels",
        params={"uriPatterns": f"at://{alice.did}/*"},
    ) as response:
        queried = (await response.json())["labels"]
    assert [(lb["val"], lb["neg"]) for lb in queried] == [
        ("spam", False), ("forged", False), ("after-forgery", False), ("spam", True)
    ]  # fmt: skip
    assert all("$bytes" in lb["sig"] for lb in queried)

    # Apps find the labeler through its record, and the account shows it is one.
    async with http.get(
        f"{mod.pds}/xrpc/app.bsky.labeler.getServices",
        params={"dids": mod.did, "detailed": "true"},
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as response:
        views = (await response.json())["views"]
    assert views[0]["policies"]["labelValues"] == ["spam", "!warn"]
    async with http.get(
        f"{mod.pds}/xrpc/app.bsky.actor.getProfile", params={"actor": mod.did},
        headers={"Authorization": f"Bearer {alice.token}"},
    ) as response:  # fmt: skip
        assert (await response.json())["associated"]["labeler"] is True

    # A report, through alice's PDS, to the labeler named in atproto-proxy.
    async with http.post(
        f"{alice.pds}/xrpc/com.atproto.moderation.createReport",
        json={"reasonType": "com.atproto.moderation.defs#reasonSpam", "reason": "ads",
              "subject": {"$type": "com.atproto.repo.strongRef", "uri": labeled["uri"],
                          "cid": labeled["cid"]}},
        headers={"Authorization": f"Bearer {alice.token}",
                 "atproto-proxy": f"{mod.did}#atproto_labeler"},
    ) as response:  # fmt: skip
        report = await response.json()
        assert response.status == 200, report
    assert report["reportedBy"] == alice.did
    listed = await strata(
        "labeler", "reports", "--url", labeler_url, "--data-dir", str(labeler_dir)
    )
    assert f"#{report['id']}" in listed and labeled["uri"] in listed and alice.did in listed
