"""What the relay checks before it passes a `#commit` or `#sync` on.

Always: the commit's structure and signature (against the key in the account's current DID
document), that its DID and rev match the event, that the rev is not in the future, and the
protocol's size limits. Strict (the default): sync 1.1, so `prevData` must be present and the
ops must invert to it, and the deprecated `tooBig` / `rebase` flags are refused. A host marked
lenient gets the strict checks as warnings, for PDSes older than sync 1.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from strata.core.car import read_car
from strata.core.cid import CID
from strata.core.crypto import PublicKey
from strata.core.errors import (
    CommitInversionFailed,
    CommitSignatureInvalid,
    CommitTooLarge,
    CoreError,
    InvalidSyntax,
)
from strata.core.repo import Commit, VerifiedCommit, verify_commit_event
from strata.core.repo.sync import MAX_BLOCKS_BYTES
from strata.core.syntax import tid_timestamp_micros

FUTURE_REV_TOLERANCE_US: Final = 5 * 60 * 1_000_000


class Rejected(Exception):
    """An event the relay drops; `reason` is the label it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Checked:
    """A commit or sync that passed, and the strict checks a lenient host was let off."""

    commit: Commit
    cid: CID
    warnings: list[str] = field(default_factory=list)


def _check_rev(rev: str, previous_rev: str | None, now_us: int, same_ok: bool = False) -> None:
    try:
        micros = tid_timestamp_micros(rev)
    except InvalidSyntax as exc:
        raise Rejected("invalid-commit", f"rev is not a TID: {rev!r}") from exc
    if micros > now_us + FUTURE_REV_TOLERANCE_US:
        raise Rejected("future-rev", f"rev {rev} is more than 5 minutes in the future")
    if previous_rev is not None and (rev < previous_rev or (rev == previous_rev and not same_ok)):
        raise Rejected("rev-not-increasing", f"rev {rev} is not after {previous_rev}")


def check_commit(
    body: dict[str, Any],
    key: PublicKey,
    previous_rev: str | None,
    now_us: int,
    strict: bool = True,
) -> Checked:
    """Verify a `#commit` body; raise `Rejected` with the reason it is dropped."""
    rev = body.get("rev")
    if not isinstance(rev, str):
        raise Rejected("invalid-commit", "commit event has no rev")
    _check_rev(rev, previous_rev, now_us)
    warnings: list[str] = []
    for flag in ("tooBig", "rebase"):
        if body.get(flag):
            if strict:
                raise Rejected("deprecated-flag", f"deprecated {flag} flag set")
            warnings.append(f"deprecated {flag} flag set")
    # The first commit the relay sees of an account may lack prevData; later ones may not.
    need_prev_data = previous_rev is not None
    if need_prev_data and body.get("prevData") is None:
        if strict:
            raise Rejected("missing-prev-data", "commit has no prevData to verify by inversion")
        warnings.append("no prevData: not verified by inversion")
    try:
        verified = verify_commit_event(body, key, require_prev_data=False)
    except CommitTooLarge as exc:
        raise Rejected("oversized", str(exc)) from exc
    except CommitSignatureInvalid as exc:
        raise Rejected("bad-signature", str(exc)) from exc
    except CommitInversionFailed as exc:
        if strict:
            raise Rejected("mst-inversion", str(exc)) from exc
        warnings.append(str(exc))
        verified = _signed_only(body, key)
    except CoreError as exc:
        raise Rejected("invalid-commit", str(exc)) from exc
    return Checked(verified.commit, verified.cid, warnings)


def _signed_only(body: dict[str, Any], key: PublicKey) -> VerifiedCommit:
    """For lenient hosts: everything but the inversion."""
    lenient = {k: v for k, v in body.items() if k != "prevData"}
    return verify_commit_event(lenient, key, require_prev_data=False)


def check_sync(
    body: dict[str, Any], key: PublicKey, previous_rev: str | None, now_us: int
) -> Checked:
    """Verify a `#sync` body: a signed commit block, not older than what the relay holds (a
    PDS announces a new repository's first commit again with `#sync`)."""
    did, rev, blocks = body.get("did"), body.get("rev"), body.get("blocks")
    if not isinstance(did, str) or not isinstance(rev, str) or not isinstance(blocks, bytes):
        raise Rejected("invalid-sync", "sync event must carry did, rev and blocks")
    if len(blocks) > MAX_BLOCKS_BYTES:
        raise Rejected("oversized", f"blocks are {len(blocks)} bytes")
    _check_rev(rev, previous_rev, now_us, same_ok=True)
    try:
        root, found = read_car(blocks)
        commit = Commit.decode(found[root])
    except (CoreError, KeyError) as exc:
        raise Rejected("invalid-sync", f"sync blocks do not hold the commit: {exc}") from exc
    if commit.did != did or commit.rev != rev:
        raise Rejected("invalid-sync", "sync commit does not match the event's did and rev")
    if not commit.verify(key):
        raise Rejected("bad-signature", "sync commit signature does not verify")
    return Checked(commit, root)
