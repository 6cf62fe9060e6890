"""The state a did:plc log describes, and the W3C DID document the directory serves for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from strata.core.crypto import ES256, ES256K, parse_did_key
from strata.core.errors import CoreError
from strata.core.plc.operation import Operation, normalize_operation

_BASE_CONTEXT: Final = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
_KEY_CONTEXT: Final = {
    ES256: "https://w3id.org/security/suites/ecdsa-2019/v1",
    ES256K: "https://w3id.org/security/suites/secp256k1-2019/v1",
}


@dataclass(frozen=True, slots=True)
class DocumentData:
    """The PLC-specific state of a DID: what `GET /:did/data` returns."""

    did: str
    verification_methods: dict[str, str]
    rotation_keys: list[str]
    also_known_as: list[str]
    services: dict[str, dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        """The JSON form, with the directory's field names."""
        return {
            "did": self.did,
            "verificationMethods": self.verification_methods,
            "rotationKeys": self.rotation_keys,
            "alsoKnownAs": self.also_known_as,
            "services": self.services,
        }


def document_data(did: str, op: Operation) -> DocumentData | None:
    """The state after `op`, or None when `op` is a tombstone (the DID is deactivated)."""
    if op["type"] == "plc_tombstone":
        return None
    norm = normalize_operation(op)
    return DocumentData(
        did=did,
        verification_methods=dict(norm["verificationMethods"]),
        rotation_keys=list(norm["rotationKeys"]),
        also_known_as=list(norm["alsoKnownAs"]),
        services={name: dict(svc) for name, svc in norm["services"].items()},
    )


def _key_context(did_key: str) -> str | None:
    try:
        return _KEY_CONTEXT.get(parse_did_key(did_key).jwt_alg)
    except CoreError:
        # Verification methods may hold key types this code does not know: no context for them.
        return None


def format_did_document(data: DocumentData) -> dict[str, Any]:
    """The DID document in the directory's current format (`Multikey` verification methods)."""
    context = list(_BASE_CONTEXT)
    methods = []
    for key_id, did_key in data.verification_methods.items():
        extra = _key_context(did_key)
        if extra is not None and extra not in context:
            context.append(extra)
        methods.append(
            {
                "id": f"{data.did}#{key_id}",
                "type": "Multikey",
                "controller": data.did,
                "publicKeyMultibase": did_key.removeprefix("did:key:"),
            }
        )
    services = [
        {"id": f"#{name}", "type": svc["type"], "serviceEndpoint": svc["endpoint"]}
        for name, svc in data.services.items()
    ]
    return {
        "@context": context,
        "id": data.did,
        "alsoKnownAs": data.also_known_as,
        "verificationMethod": methods,
        "service": services,
    }
