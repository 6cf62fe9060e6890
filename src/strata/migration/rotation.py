"""The user's own PLC rotation key: a secp256k1 key kept in a file (its 32 bytes in hex, as the
PDS's own rotation key is configured), listed first among the DID's rotation keys so that the
user can move their identity without their PDS, even when it is gone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from strata.core.crypto import K256Keypair, Keypair
from strata.core.errors import CoreError
from strata.net.client import XrpcClient
from strata.pds.plc_client import PlcClient

MAX_ROTATION_KEYS = 5


class RotationKeyError(Exception):
    """The key file is missing, unreadable or not a rotation key of the DID."""


def load_key(path: Path) -> Keypair:
    """The rotation key stored in `path`."""
    try:
        return K256Keypair.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    except (OSError, ValueError, CoreError) as exc:
        raise RotationKeyError(f"cannot read a rotation key from {path}: {exc}") from exc


def create_key(path: Path) -> Keypair:
    """A new rotation key written to `path` (readable by its owner only); refuses to replace
    an existing file, which may be the only copy of a key the DID lists."""
    key = K256Keypair.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise RotationKeyError(f"{path} already exists; it may hold a key your DID lists") from exc
    with os.fdopen(fd, "w") as out:
        out.write(key.private_bytes().hex() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return key


async def last_operation(plc: PlcClient, did: str) -> dict[str, Any]:
    """The DID's current operation in the directory; raises `RotationKeyError` when the DID
    is unknown or tombstoned, `PlcUnavailable` when no directory answers."""
    last = await plc.last_operation(did)
    if last is None or last.get("type") != "plc_operation":
        raise RotationKeyError(f"{did} is not an active did:plc in the directory")
    return last


def with_user_keys(keys: list[str], user_keys: list[str]) -> list[str]:
    """`keys` with the user's own keys first (highest priority), without repeats."""
    merged = list(dict.fromkeys([*user_keys, *keys]))
    if len(merged) > MAX_ROTATION_KEYS:
        raise RotationKeyError(
            f"a DID may list at most {MAX_ROTATION_KEYS} rotation keys, this would list "
            f"{len(merged)}: {', '.join(merged)}"
        )
    return merged


async def add_rotation_key(
    client: XrpcClient, last: dict[str, Any], key: Keypair, token: str
) -> dict[str, Any]:
    """List `key` first among the rotation keys of the DID whose current operation is `last`,
    through the account's PDS (which signs the change after the emailed `token`); returns the
    submitted operation."""
    keys = with_user_keys(list(last.get("rotationKeys", [])), [key.did()])
    answer = await client.procedure(
        "com.atproto.identity.signPlcOperation", {"token": token, "rotationKeys": keys}
    )
    operation: dict[str, Any] = answer["operation"]
    await client.procedure("com.atproto.identity.submitPlcOperation", {"operation": operation})
    return operation
