"""A DID's operation log: whether a proposed operation may extend it, and what it nullifies.

Rotation keys are listed in order of authority. Within 72 hours of an operation, a key listed
before the one that signed it may fork the log at an earlier point, nullifying everything after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from strata.core.plc.document import DocumentData, document_data
from strata.core.plc.operation import (
    GenesisHashMismatch,
    ImproperOperation,
    LateRecovery,
    MisorderedOperation,
    Operation,
    assure_valid_sig,
    did_for_genesis,
    normalize_operation,
    operation_cid,
)

RECOVERY_WINDOW_MS: Final = 72 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class IndexedOp:
    """An operation as a directory stored it: CID, acceptance time, and whether nullified."""

    did: str
    operation: Operation
    cid: str
    nullified: bool
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class NextOp:
    """What accepting a proposed operation does to the log."""

    prev: str | None
    nullified: list[str]


def _assure_valid_genesis(did: str, op: Operation) -> DocumentData:
    if op["type"] == "plc_tombstone":
        raise MisorderedOperation()
    if op["prev"] is not None:
        raise ImproperOperation("Improperly formatted operation, expected null prev on create")
    assure_valid_sig(normalize_operation(op)["rotationKeys"], op)
    expected = did_for_genesis(op)
    if expected != did:
        raise GenesisHashMismatch(
            f"Hash of genesis operation does not match DID identifier: {expected}"
        )
    data = document_data(did, op)
    assert data is not None  # a genesis operation is never a tombstone
    return data


def assure_valid_next_op(
    did: str, ops: Sequence[IndexedOp], proposed: Operation, proposed_ms: int
) -> NextOp:
    """Check `proposed` against the DID's valid (not nullified) log, oldest first.

    Returns the `prev` it extends and the CIDs it nullifies; raises a `PlcError` naming why the
    operation is refused otherwise.
    """
    if not ops:
        _assure_valid_genesis(did, proposed)
        return NextOp(prev=None, nullified=[])
    prev = proposed["prev"]
    if prev is None:
        raise MisorderedOperation()
    index = next((i for i, op in enumerate(ops) if op.cid == prev), -1)
    if index < 0:
        raise MisorderedOperation()
    last = ops[index]
    if last.operation["type"] == "plc_tombstone":
        raise MisorderedOperation()
    keys: list[str] = normalize_operation(last.operation)["rotationKeys"]
    nullified = ops[index + 1 :]
    if not nullified:
        assure_valid_sig(keys, proposed)
        return NextOp(prev=prev, nullified=[])

    # A fork: only a key with more authority than the first nullified operation's signer may
    # rewrite history, and only within the recovery window.
    disputed_signer = assure_valid_sig(keys, nullified[0].operation)
    assure_valid_sig(keys[: keys.index(disputed_signer)], proposed)
    if proposed_ms <= ops[-1].created_at_ms:
        raise MisorderedOperation()
    lapsed = proposed_ms - nullified[0].created_at_ms
    if lapsed > RECOVERY_WINDOW_MS:
        raise LateRecovery(
            "Recovery operation occurred outside of the allowed 72 hr recovery window. "
            f"Time lapsed: {lapsed}"
        )
    return NextOp(prev=prev, nullified=[op.cid for op in nullified])


def validate_operation_log(did: str, ops: Sequence[Operation]) -> DocumentData | None:
    """Replay a DID's valid log (what `GET /:did/log` returns) and return its final state.

    Returns None when the log ends in a tombstone; raises a `PlcError` when any operation does
    not follow from the one before it.
    """
    if not ops:
        raise ImproperOperation("Improperly formatted operation, empty log")
    data: DocumentData | None = _assure_valid_genesis(did, ops[0])
    prev = str(operation_cid(ops[0]))
    for i, op in enumerate(ops[1:], start=1):
        if data is None or op["prev"] != prev:
            raise MisorderedOperation()
        if op["type"] == "create":
            raise ImproperOperation("Improperly formatted operation, create after genesis")
        assure_valid_sig(data.rotation_keys, op)
        data = document_data(did, op)
        prev = str(operation_cid(op))
        if data is None and i != len(ops) - 1:
            raise MisorderedOperation()
    return data


RATE_LIMITS: Final = (
    (3600 * 1000, 10, "hour"),
    (86_400 * 1000, 30, "day"),
    (7 * 86_400 * 1000, 100, "week"),
)


def check_rate_limit(ops: Sequence[IndexedOp], now_ms: int) -> None:
    """Refuse a DID's next ordinary operation when it already made too many recently.

    Recovery operations are exempt, so that a compromised key cannot lock out the recovery key
    by spending the DID's budget.
    """
    for window, limit, name in RATE_LIMITS:
        recent = sum(1 for op in ops if op.created_at_ms > now_ms - window)
        if recent >= limit:
            raise ImproperOperation(f"Too many operations within last {name} (max {limit})")
