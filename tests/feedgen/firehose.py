"""Synthetic `#commit` frames for indexer tests: real records in a real CAR, no signature (the
feed generator trusts its relay to have verified commits)."""

from __future__ import annotations

import itertools
from typing import Any

from strata.core import cbor
from strata.core.car import write_car
from strata.core.cid import CID
from strata.core.frames import Frame
from strata.core.syntax import next_tid
from strata.core.syntax.dates import format_millis

POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"

_seq = itertools.count(1)
SOME_CID = str(cbor.cid_of({"some": "record"}))


def did(name: str) -> str:
    """A did:plc made from a short name."""
    return "did:plc:" + (name * 24)[:24]


def post(at_ms: int, text: str = "hi", langs: list[str] | None = None, reply_to: str = "") -> Any:
    record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": format_millis(at_ms)}
    if langs is not None:
        record["langs"] = langs
    if reply_to:
        ref = {"uri": reply_to, "cid": SOME_CID}
        record["reply"] = {"root": ref, "parent": ref}
    return record


def like(subject: str, at_ms: int, collection: str = LIKE) -> Any:
    return {
        "$type": collection,
        "subject": {"uri": subject, "cid": SOME_CID},
        "createdAt": format_millis(at_ms),
    }


def follow(subject: str, at_ms: int) -> Any:
    return {"$type": FOLLOW, "subject": subject, "createdAt": format_millis(at_ms)}


class Repo:
    """An account writing records; each call returns the frame its commit would produce."""

    def __init__(self, name: str) -> None:
        self.did = did(name)

    def commit(self, *ops: tuple[str, str, Any], rev: str | None = None) -> tuple[int, Frame]:
        blocks: list[tuple[CID, bytes]] = []
        out: list[dict[str, Any]] = []
        for action, path, record in ops:
            if record is None:
                out.append({"action": action, "path": path, "cid": None})
            else:
                cid, block = cbor.encode_with_cid(record)
                blocks.append((cid, block))
                out.append({"action": action, "path": path, "cid": cid})
        root = blocks[0][0] if blocks else cbor.cid_of({})
        seq = next(_seq)
        body = {
            "seq": seq,
            "repo": self.did,
            "rev": rev or next_tid(),
            "ops": out,
            "blocks": write_car([root], blocks),
        }
        return seq, Frame(1, "#commit", body)

    def create(self, collection: str, record: Any) -> tuple[str, tuple[int, Frame]]:
        """A new record: its at:// URI and the frame."""
        path = f"{collection}/{next_tid()}"
        return f"at://{self.did}/{path}", self.commit(("create", path, record))

    def delete(self, uri: str) -> tuple[int, Frame]:
        return self.commit(("delete", uri.split("/", 3)[3], None))
