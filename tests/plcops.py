"""Building signed PLC operations for tests."""

from __future__ import annotations

from typing import Any

from strata.core.crypto import Keypair
from strata.core.plc import did_for_genesis, operation_cid, sign_operation


def genesis(
    rotation: list[Keypair],
    signer: Keypair,
    handle: str = "alice.test",
    pds: str = "https://pds.test",
) -> tuple[str, dict[str, Any]]:
    """A signed genesis operation and the DID it creates."""
    op = sign_operation(
        {
            "type": "plc_operation",
            "rotationKeys": [key.did() for key in rotation],
            "verificationMethods": {"atproto": rotation[0].did()},
            "alsoKnownAs": [f"at://{handle}"],
            "services": {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": pds}},
            "prev": None,
        },
        signer,
    )
    return did_for_genesis(op), op


def update(prev: dict[str, Any], signer: Keypair, **changes: Any) -> dict[str, Any]:
    """An operation following `prev`, with some fields changed, signed by `signer`."""
    base = {key: value for key, value in prev.items() if key != "sig"}
    if prev["type"] == "plc_tombstone":
        raise ValueError("nothing follows a tombstone")
    return sign_operation({**base, **changes, "prev": str(operation_cid(prev))}, signer)


def tombstone(prev: dict[str, Any], signer: Keypair) -> dict[str, Any]:
    """A tombstone following `prev`."""
    return sign_operation({"type": "plc_tombstone", "prev": str(operation_cid(prev))}, signer)
