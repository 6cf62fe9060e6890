"""Verifying a firehose `#commit` event on its own blocks (sync 1.1).

A consumer that does not hold the repository can still check a commit: the signature against
the account's key, the ops against the new tree in the event's blocks, and, by undoing the ops on
that partial tree ("MST operation inversion"), that the result is exactly `prevData`, the tree
the previous commit signed. Nothing outside the event is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from strata.core.car import read_car
from strata.core.cid import CID
from strata.core.crypto import PublicKey
from strata.core.errors import (
    CommitError,
    CommitInversionFailed,
    CommitSignatureInvalid,
    CommitTooLarge,
    CoreError,
)
from strata.core.mst import MST
from strata.core.mst.diff import RecordOp
from strata.core.mst.proof import invert
from strata.core.repo.commit import Commit
from strata.core.repo.repository import RepoOp

MAX_OPS: Final = 200
MAX_BLOCKS_BYTES: Final = 2_000_000


@dataclass(frozen=True, slots=True)
class VerifiedCommit:
    """A `#commit` event that passed verification, with its parsed parts."""

    commit: Commit
    cid: CID
    ops: list[RepoOp]
    blocks: Mapping[CID, bytes]
    inverted: bool
    """Whether `prevData` was checked by inversion (False for events without it)."""


def _parse_op(raw: Any) -> RepoOp:
    if not isinstance(raw, dict):
        raise CommitError("op must be a map")
    action, path, cid, prev = raw.get("action"), raw.get("path"), raw.get("cid"), raw.get("prev")
    if action not in ("create", "update", "delete") or not isinstance(path, str):
        raise CommitError(f"op has an invalid action or path: {action!r} {path!r}")
    if (cid is not None and not isinstance(cid, CID)) or (
        prev is not None and not isinstance(prev, CID)
    ):
        raise CommitError(f"op on {path} has a cid or prev that is not a CID link")
    if (action == "delete") != (cid is None):
        raise CommitError(
            f"{action} op on {path} must {'not ' if action == 'delete' else ''}carry a cid"
        )
    return RepoOp(action, path, cid, prev)


def verify_commit_event(
    event: Mapping[str, Any],
    key: PublicKey | None,
    *,
    require_prev_data: bool = True,
    max_blocks_bytes: int = MAX_BLOCKS_BYTES,
) -> VerifiedCommit:
    """Check a decoded `#commit` event body; raise `CommitError` naming the first failure.

    `key` is the account's current signing key; None skips the signature (for tools that have
    no DID document at hand). With `require_prev_data`, events without `prevData` are refused.
    """
    repo, commit_cid, rev, raw_blocks = (
        event.get("repo"),
        event.get("commit"),
        event.get("rev"),
        event.get("blocks"),
    )
    raw_ops = event.get("ops")
    if not isinstance(repo, str) or not isinstance(commit_cid, CID) or not isinstance(rev, str):
        raise CommitError("event must carry repo, commit and rev")
    if not isinstance(raw_blocks, bytes) or not isinstance(raw_ops, list):
        raise CommitError("event must carry blocks and ops")
    if len(raw_blocks) > max_blocks_bytes:
        raise CommitTooLarge(
            f"blocks are {len(raw_blocks)} bytes, over the {max_blocks_bytes} limit"
        )
    if len(raw_ops) > MAX_OPS:
        raise CommitTooLarge(f"{len(raw_ops)} ops, over the limit of {MAX_OPS}")
    try:
        root, blocks = read_car(raw_blocks)
    except CoreError as exc:
        raise CommitError(f"blocks are not a valid CAR: {exc}") from exc
    if root != commit_cid:
        raise CommitError("the blocks' root is not the event's commit")
    commit = Commit.decode(blocks[commit_cid])
    if commit.did != repo:
        raise CommitError(f"commit is for {commit.did}, event is for {repo}")
    if commit.rev != rev:
        raise CommitError(f"commit rev {commit.rev} differs from event rev {rev}")
    if key is not None and not commit.verify(key):
        raise CommitSignatureInvalid("commit signature does not verify with the account's key")

    ops = [_parse_op(raw) for raw in raw_ops]
    if len({op.path for op in ops}) != len(ops):
        raise CommitError("an op path appears twice")
    for op in ops:
        if op.cid is not None and op.cid not in blocks:
            raise CommitError(f"record block for {op.path} is missing")

    prev_data = event.get("prevData")
    if prev_data is None:
        if require_prev_data:
            raise CommitError("event has no prevData: cannot verify by inversion")
        return VerifiedCommit(commit, commit_cid, ops, blocks, inverted=False)
    if not isinstance(prev_data, CID):
        raise CommitError("prevData must be a CID link")
    for op in ops:
        if op.action != "create" and op.prev is None:
            raise CommitError(f"{op.action} op on {op.path} lacks prev")
    record_ops = [RecordOp(op.path, op.prev, op.cid) for op in ops]
    try:
        before = invert(MST.load(blocks, commit.data), record_ops)
    except CoreError as exc:
        raise CommitInversionFailed(f"inversion failed: {exc}") from exc
    if before.root != prev_data:
        raise CommitInversionFailed(f"inverted tree {before.root} is not prevData {prev_data}")
    return VerifiedCommit(commit, commit_cid, ops, blocks, inverted=True)
