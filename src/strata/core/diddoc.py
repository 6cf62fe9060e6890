"""Reading the atproto parts of a DID document: handle, signing key, PDS endpoint.

Accepts the current `Multikey` form and the older `EcdsaSecp256k1VerificationKey2019` /
`EcdsaSecp256r1VerificationKey2019` forms (raw key bytes, no multicodec), which some directories
and did:web hosts still serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from strata.core.crypto import ES256, ES256K, PublicKey, parse_multikey, parse_public_key
from strata.core.crypto.multibase import multibase_decode
from strata.core.errors import CoreError
from strata.core.syntax import validate_did

_LEGACY_KEY_TYPES: Final = {
    "EcdsaSecp256k1VerificationKey2019": ES256K,
    "EcdsaSecp256r1VerificationKey2019": ES256,
}


class DidDocumentError(CoreError):
    """A DID document is malformed or is not the document of the DID asked for."""


def _find(entries: list[Any], did: str, fragment: str) -> dict[str, Any] | None:
    for entry in entries:
        if isinstance(entry, dict) and entry.get("id") in (f"#{fragment}", f"{did}#{fragment}"):
            return entry
    return None


@dataclass(frozen=True, slots=True)
class DidDocument:
    """A DID document whose `id` has been checked against the DID that was resolved."""

    did: str
    raw: dict[str, Any]

    @property
    def handle(self) -> str | None:
        """The handle the document claims (first `at://` alias), unverified, lower-cased."""
        aliases = self.raw.get("alsoKnownAs")
        for alias in aliases if isinstance(aliases, list) else []:
            if isinstance(alias, str) and alias.startswith("at://"):
                return alias[len("at://") :].lower()
        return None

    def signing_key(self) -> PublicKey | None:
        """The `#atproto` verification key, or None when absent or unparseable."""
        return self.verification_key("atproto")

    def verification_key(self, fragment: str) -> PublicKey | None:
        """The verification key `#fragment` (`atproto`, or `atproto_label` for a labeler), or
        None when absent or unparseable."""
        methods = self.raw.get("verificationMethod")
        method = _find(methods if isinstance(methods, list) else [], self.did, fragment)
        if method is None or not isinstance(method.get("publicKeyMultibase"), str):
            return None
        try:
            if method.get("type") == "Multikey":
                return parse_multikey(method["publicKeyMultibase"])
            alg = _LEGACY_KEY_TYPES.get(method.get("type", ""))
            if alg is None:
                return None
            return parse_public_key(multibase_decode(method["publicKeyMultibase"]), alg)
        except CoreError:
            return None

    def service_endpoint(self, fragment: str, service_type: str | None = None) -> str | None:
        """The http(s) endpoint of the service `#fragment` (of `service_type`, when given)."""
        services = self.raw.get("service")
        service = _find(services if isinstance(services, list) else [], self.did, fragment)
        if service is None or (service_type is not None and service.get("type") != service_type):
            return None
        endpoint = service.get("serviceEndpoint")
        if not isinstance(endpoint, str):
            return None
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return endpoint

    @property
    def pds_endpoint(self) -> str | None:
        """The `#atproto_pds` endpoint: where the account's repository lives."""
        return self.service_endpoint("atproto_pds", "AtprotoPersonalDataServer")


def parse_did_document(obj: Any, did: str) -> DidDocument:
    """Check that `obj` is a DID document for exactly `did` and wrap it."""
    if not isinstance(obj, dict):
        raise DidDocumentError("DID document is not a JSON object")
    doc_id = obj.get("id")
    if doc_id != did:
        raise DidDocumentError(f"DID document is for {str(doc_id)[:100]!r}, not {did!r}")
    validate_did(did)
    for name in ("alsoKnownAs", "verificationMethod", "service"):
        if name in obj and not isinstance(obj[name], list):
            raise DidDocumentError(f"DID document field {name} is not a list")
    return DidDocument(did=did, raw=obj)
