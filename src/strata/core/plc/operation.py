"""One PLC operation: its shape, signature, CID, and the DID its genesis form derives.

Three shapes exist: `plc_operation` (the current form), `plc_tombstone`, and the legacy
`create`, which is only ever a genesis operation and is read as its `plc_operation` equivalent.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from strata.core import cbor
from strata.core.cid import CID
from strata.core.crypto import Keypair, parse_did_key
from strata.core.crypto.multibase import multibase_decode
from strata.core.errors import CoreError

Operation = dict[str, Any]
"""An operation in its JSON form, as `parse_operation` accepts it."""

MAX_OP_BYTES: Final = 4000
MAX_AKA_ENTRIES: Final = 10
MAX_AKA_LENGTH: Final = 258  # a 253-character handle plus "at://"
MAX_ROTATION_KEYS: Final = 10
MAX_SERVICES: Final = 10
MAX_SERVICE_TYPE_LENGTH: Final = 256
MAX_SERVICE_ENDPOINT_LENGTH: Final = 512
MAX_VERIFICATION_METHODS: Final = 10
MAX_ID_LENGTH: Final = 32
MAX_DID_KEY_LENGTH: Final = 256

_PLC_DID_RE: Final = re.compile(r"did:plc:[a-z2-7]{24}")

_FIELDS: Final = {
    "plc_operation": {
        "type",
        "rotationKeys",
        "verificationMethods",
        "alsoKnownAs",
        "services",
        "prev",
        "sig",
    },
    "plc_tombstone": {"type", "prev", "sig"},
    "create": {"type", "signingKey", "recoveryKey", "handle", "service", "prev", "sig"},
}


class PlcError(CoreError):
    """An operation the directory must refuse; the message is the reason given to the client."""


class ImproperOperation(PlcError):
    """The operation is not a well-formed operation, or breaks a size or count limit."""


class MisorderedOperation(PlcError):
    """The operation does not extend the current log (stale or unknown `prev`, or a tombstone)."""

    def __init__(self) -> None:
        super().__init__("Operations not correctly ordered")


class LateRecovery(PlcError):
    """A recovery operation arrived after the 72-hour window of the operation it would nullify."""


class GenesisHashMismatch(PlcError):
    """The genesis operation does not hash to the DID it was submitted for."""


class InvalidSignature(PlcError):
    """No allowed rotation key signed the operation, or the signature is not canonical."""


def validate_plc_did(did: str) -> str:
    """Return `did` if it is a syntactically valid did:plc, else raise `ImproperOperation`."""
    if not _PLC_DID_RE.fullmatch(did):
        raise ImproperOperation(f"Invalid did:plc identifier: {did[:64]!r}")
    return did


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _is_service_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(svc, dict)
        and svc.keys() == {"type", "endpoint"}
        and isinstance(svc["type"], str)
        and isinstance(svc["endpoint"], str)
        for svc in value.values()
    )


def parse_operation(obj: Any) -> Operation:
    """Return `obj` if it has exactly the fields and types of one signed operation shape.

    Raises `ImproperOperation` otherwise. Unknown fields are refused, because they would be
    signed and hashed along with the rest and change the operation's CID.
    """
    if not isinstance(obj, dict):
        raise ImproperOperation("Not a valid operation: expected a JSON object")
    kind = obj.get("type")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise ImproperOperation(f"Not a valid operation: unknown type {kind!r}")
    if obj.keys() != fields:
        extra = sorted(obj.keys() - fields)
        missing = sorted(fields - obj.keys())
        raise ImproperOperation(
            f"Not a valid operation: unexpected fields {extra}, missing fields {missing}"
        )
    if not isinstance(obj["sig"], str):
        raise ImproperOperation("Not a valid operation: sig must be a string")
    prev = obj["prev"]
    if kind == "plc_operation":
        ok = (
            _is_str_list(obj["rotationKeys"])
            and _is_str_map(obj["verificationMethods"])
            and _is_str_list(obj["alsoKnownAs"])
            and _is_service_map(obj["services"])
            and (prev is None or isinstance(prev, str))
        )
    elif kind == "plc_tombstone":
        ok = isinstance(prev, str)
    else:
        ok = prev is None and all(
            isinstance(obj[name], str)
            for name in ("signingKey", "recoveryKey", "handle", "service")
        )
    if not ok:
        raise ImproperOperation(f"Not a valid operation: a field of {kind} has the wrong type")
    if isinstance(prev, str):
        try:
            CID.from_str(prev)
        except CoreError as exc:
            raise ImproperOperation(f"Not a valid operation: prev is not a CID: {exc}") from exc
    return obj


def is_tombstone(op: Operation) -> bool:
    """Whether the operation deactivates its DID."""
    return bool(op["type"] == "plc_tombstone")


def _ensure_http(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else f"https://{url}"


def _ensure_at(handle: str) -> str:
    if handle.startswith("at://"):
        return handle
    return "at://" + handle.replace("http://", "", 1).replace("https://", "", 1)


def normalize_operation(op: Operation) -> Operation:
    """The `plc_operation` form of a `plc_operation` or legacy `create` operation."""
    if op["type"] == "plc_operation":
        return op
    if op["type"] != "create":
        raise ImproperOperation(f"cannot normalize a {op['type']} operation")
    return {
        "type": "plc_operation",
        "verificationMethods": {"atproto": op["signingKey"]},
        "rotationKeys": [op["recoveryKey"], op["signingKey"]],
        "alsoKnownAs": [_ensure_at(op["handle"])],
        "services": {
            "atproto_pds": {
                "type": "AtprotoPersonalDataServer",
                "endpoint": _ensure_http(op["service"]),
            }
        },
        "prev": op["prev"],
        "sig": op["sig"],
    }


def operation_cid(op: Operation) -> CID:
    """The CID of a signed operation: what the next operation's `prev` names."""
    return cbor.cid_of(op)


def did_for_genesis(op: Operation) -> str:
    """The did:plc a signed genesis operation creates: base32 of its SHA-256, 24 characters."""
    digest = hashlib.sha256(cbor.encode(op)).digest()
    return "did:plc:" + base64.b32encode(digest).decode().lower()[:24]


def _unsigned(op: Operation) -> Operation:
    return {key: value for key, value in op.items() if key != "sig"}


def sign_operation(unsigned: Operation, key: Keypair) -> Operation:
    """Sign an operation (without `sig`) and return it with the base64url signature added."""
    signature = key.sign(cbor.encode(_unsigned(unsigned)))
    return {**unsigned, "sig": base64.urlsafe_b64encode(signature).decode().rstrip("=")}


def next_operation(last: Operation, changes: Mapping[str, Any], key: Keypair) -> Operation:
    """The operation that follows `last`: its fields with `changes` applied, `prev` naming
    it, signed with `key` (one of `last`'s rotation keys, or the directory refuses it)."""
    unsigned = {**_unsigned(last), **changes, "prev": str(operation_cid(last))}
    return sign_operation(unsigned, key)


def _decode_sig(sig: str) -> bytes | None:
    # Canonical base64url only: no padding and zero trailing bits, so that one signature has
    # exactly one spelling and therefore the operation exactly one CID.
    if "=" in sig or len(sig) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except ValueError:
        return None
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != sig:
        return None
    return raw


def assure_valid_sig(allowed_keys: list[str], op: Operation) -> str:
    """Return the first of `allowed_keys` whose signature `op` carries; else `InvalidSignature`."""
    signature = _decode_sig(op["sig"])
    if signature is not None and len(signature) == 64:
        data = cbor.encode(_unsigned(op))
        for did_key in allowed_keys:
            try:
                if parse_did_key(did_key).verify(data, signature):
                    return did_key
            except CoreError:
                continue
    raise InvalidSignature(f"Invalid signature on op: sig {op['sig'][:100]!r}")


def _check_did_key_syntax(key: str) -> None:
    # Verification methods may hold any key type; only the did:key + base58btc shape is checked.
    if not key.startswith("did:key:"):
        raise ValueError("missing did:key: prefix")
    multibase_decode(key[len("did:key:") :])


def check_limits(op: Operation) -> None:
    """Apply the directory's anti-abuse limits to an incoming operation.

    The limits are the reference directory's ingress policy, not part of an operation's
    validity: a mirror replaying an existing log does not apply them.
    """
    size = len(cbor.encode(op))
    if size > MAX_OP_BYTES:
        raise ImproperOperation(
            f"Operation too large ({MAX_OP_BYTES} bytes maximum in cbor encoding, got {size})"
        )
    if op["type"] != "plc_operation":
        if op["type"] == "create":
            raise ImproperOperation("Legacy create operations are no longer accepted")
        return
    aka = op["alsoKnownAs"]
    if len(aka) > MAX_AKA_ENTRIES:
        raise ImproperOperation(f"Too many alsoKnownAs entries (max {MAX_AKA_ENTRIES})")
    if len(set(aka)) != len(aka):
        raise ImproperOperation("Duplicate alsoKnownAs entry")
    for entry in aka:
        if len(entry) > MAX_AKA_LENGTH:
            raise ImproperOperation(f"alsoKnownAs entry too long (max {MAX_AKA_LENGTH})")
    if len(op["rotationKeys"]) > MAX_ROTATION_KEYS:
        raise ImproperOperation(f"Too many rotationKey entries (max {MAX_ROTATION_KEYS})")
    for key in op["rotationKeys"]:
        try:
            parse_did_key(key)
        except CoreError as exc:
            raise ImproperOperation(f"Invalid rotationKey: {key[:80]!r}") from exc
    if len(op["services"]) > MAX_SERVICES:
        raise ImproperOperation(f"Too many service entries (max {MAX_SERVICES})")
    for service_id, service in op["services"].items():
        if len(service_id) > MAX_ID_LENGTH:
            raise ImproperOperation(f"Service id too long (max {MAX_ID_LENGTH})")
        if len(service["type"]) > MAX_SERVICE_TYPE_LENGTH:
            raise ImproperOperation(f"Service type too long (max {MAX_SERVICE_TYPE_LENGTH})")
        if len(service["endpoint"]) > MAX_SERVICE_ENDPOINT_LENGTH:
            raise ImproperOperation(
                f"Service endpoint too long (max {MAX_SERVICE_ENDPOINT_LENGTH})"
            )
    methods = op["verificationMethods"]
    if len(methods) > MAX_VERIFICATION_METHODS:
        raise ImproperOperation(
            f"Too many Verification Method entries (max {MAX_VERIFICATION_METHODS})"
        )
    for method_id, key in methods.items():
        if len(method_id) > MAX_ID_LENGTH:
            raise ImproperOperation(f"Verification Method id too long (max {MAX_ID_LENGTH})")
        if len(key) > MAX_DID_KEY_LENGTH:
            raise ImproperOperation(f"Verification Method key too long (max {MAX_DID_KEY_LENGTH})")
        try:
            _check_did_key_syntax(key)
        except (ValueError, CoreError) as exc:
            raise ImproperOperation(f"Invalid verificationMethod key: {key[:80]!r}") from exc
