"""The official Python SDK (`atproto` from PyPI) against a running `strata pds` process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from atproto import CAR, Client, models
from atproto_client.exceptions import RequestErrorBase
from atproto_firehose import FirehoseSubscribeReposClient, parse_subscribe_repos_message

from strata.core.cid import CID
from strata.core.crypto import parse_did_key
from strata.core.repo.sync import verify_commit_event
from tests.services import free_port, service_process

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d494844520000000100000001080600"
    "00001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A directory and a PDS as real processes; yields the PDS's URL."""
    root: Path = tmp_path_factory.mktemp("sdk")
    with service_process("plc", root / "plc") as (plc, _):
        port = free_port()
        args = ("--plc-url", plc, "--dev", "--hostname", "localhost")
        with service_process("pds", root / "pds", *args, port=port) as (pds, _):
            yield pds


def _account(pds: str, handle: str) -> Client:
    client = Client(base_url=pds)
    client.com.atproto.server.create_account(
        {"handle": handle, "email": f"{handle}@example.test", "password": "correct horse"}
    )
    client.login(handle, "correct horse")
    return client


def test_sdk_posts_likes_follows_and_exports(network: str) -> None:
    pds = network
    alice = _account(pds, "alice.test")
    bob = _account(pds, "bob.test")
    assert alice.me is not None and alice.me.handle == "alice.test"

    post = alice.send_post("hello from the SDK")
    like = bob.like(post.uri, post.cid)
    follow = bob.follow(alice.me.did)
    image = alice.send_image("a picture", PNG, "one white pixel")

    got = alice.get_post(post.uri.rsplit("/", 1)[1], alice.me.did)
    assert got.value.text == "hello from the SDK"
    listed = bob.com.atproto.repo.list_records(
        {"repo": bob.me.did, "collection": "app.bsky.feed.like"}
    )
    assert [r.uri for r in listed.records] == [like.uri]
    assert follow.uri.startswith(f"at://{bob.me.did}/app.bsky.graph.follow/")

    record = alice.com.atproto.repo.get_record(
        {
            "repo": alice.me.did,
            "collection": "app.bsky.feed.post",
            "rkey": image.uri.rsplit("/", 1)[1],
        }
    )
    blob_cid = record.value.embed.images[0].image.ref.link
    assert alice.com.atproto.sync.get_blob({"did": alice.me.did, "cid": blob_cid}) == PNG

    car = CAR.from_bytes(alice.com.atproto.sync.get_repo({"did": alice.me.did}))
    assert str(car.root) == alice.com.atproto.sync.get_latest_commit({"did": alice.me.did}).cid
    texts = sorted(b["text"] for b in car.blocks.values() if b.get("$type") == "app.bsky.feed.post")
    assert texts == ["a picture", "hello from the SDK"]


def test_sdk_errors_are_xrpc_errors(network: str) -> None:
    pds = network
    client = Client(base_url=pds)
    with pytest.raises(RequestErrorBase) as caught:
        client.login("nobody.test", "wrong")
    assert caught.value.response.status_code == 401
    assert caught.value.response.content.error == "AuthenticationRequired"


def test_firehose_from_cursor_zero_sees_every_event(network: str) -> None:
    pds = network
    carol = _account(pds, "carol.test")
    for i in range(5):
        carol.send_post(f"post {i}")
    head = carol.com.atproto.sync.get_latest_commit({"did": carol.me.did})

    seen: list[tuple[int, str]] = []
    commits: list[models.ComAtprotoSyncSubscribeRepos.Commit] = []
    done = threading.Event()
    firehose = FirehoseSubscribeReposClient(
        base_uri=pds.replace("http", "ws") + "/xrpc", params={"cursor": 0}
    )

    def on_message(message: object) -> None:
        event = parse_subscribe_repos_message(message)
        seen.append((event.seq, event.py_type))
        if isinstance(event, models.ComAtprotoSyncSubscribeRepos.Commit):
            commits.append(event)
            if event.repo == carol.me.did and event.rev == head.rev:
                done.set()
                firehose.stop()

    thread = threading.Thread(target=firehose.start, args=(on_message,), daemon=True)
    thread.start()
    assert done.wait(20), f"firehose did not deliver the last commit; saw {seen[-5:]}"
    thread.join(10)

    seqs = [seq for seq, _ in seen]
    assert seqs == list(range(1, len(seqs) + 1)), "cursor 0 replays every event, in order"
    kinds = {kind for _, kind in seen}
    assert {
        "com.atproto.sync.subscribeRepos#commit",
        "com.atproto.sync.subscribeRepos#identity",
        "com.atproto.sync.subscribeRepos#account",
        "com.atproto.sync.subscribeRepos#sync",
    } <= kinds

    # Every commit verifies by itself (signature and sync 1.1 inversion), against the key in
    # the account's DID document.
    keys: dict[str, object] = {}
    for event in commits:
        if event.repo not in keys:
            doc = Client(base_url=pds).com.atproto.repo.describe_repo({"repo": event.repo}).did_doc
            method = doc["verificationMethod"][0]["publicKeyMultibase"]
            keys[event.repo] = parse_did_key(f"did:key:{method}")
        body = {
            "repo": event.repo,
            "commit": _cid(event.commit),
            "rev": event.rev,
            "blocks": event.blocks,
            "ops": [
                {"action": op.action, "path": op.path, "cid": _cid(op.cid), "prev": _cid(op.prev)}
                for op in event.ops
            ],
            "prevData": _cid(event.prev_data),
        }
        if body["prevData"] is None:
            del body["prevData"]
        verify_commit_event(body, keys[event.repo], require_prev_data=event.since is not None)


def _cid(value: object) -> CID | None:
    if value is None:
        return None
    return CID.from_str(str(value))
