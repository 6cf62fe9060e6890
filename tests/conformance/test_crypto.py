"""atproto-interop-tests `crypto/`: signature fixtures and W3C did:key vectors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from strata.core.crypto import (
    K256Keypair,
    Keypair,
    P256Keypair,
    b58decode,
    multibase_decode,
    multibase_encode,
    parse_did_key,
    parse_public_key,
    verify_signature,
)
from tests.conformance.conftest import interop_json

SIGNATURE_CASES: list[dict[str, Any]] = interop_json("crypto", "signature-fixtures.json")
DIDKEY_CASES: list[tuple[type[Keypair], dict[str, Any]]] = [
    (K256Keypair, case) for case in interop_json("crypto", "w3c_didkey_K256.json")
] + [(P256Keypair, case) for case in interop_json("crypto", "w3c_didkey_P256.json")]

ORDER = {
    "ES256K": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}


def b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize("case", SIGNATURE_CASES, ids=[c["comment"] for c in SIGNATURE_CASES])
def test_signature_fixture(case: dict[str, Any]) -> None:
    message = b64(case["messageBase64"])
    signature = b64(case["signatureBase64"])
    from_did = parse_did_key(case["publicKeyDid"])
    # `publicKeyMultibase` is the legacy DID-document form: a bare compressed point with no
    # multicodec tag, so the algorithm comes from the case.
    from_multibase = parse_public_key(
        multibase_decode(case["publicKeyMultibase"]), case["algorithm"]
    )

    assert from_did == from_multibase
    assert from_did.jwt_alg == case["algorithm"]
    assert from_did.did_key() == case["publicKeyDid"]
    assert multibase_encode(from_multibase.compressed_bytes()) == case["publicKeyMultibase"]

    assert from_did.verify(message, signature) is case["validSignature"]
    assert from_multibase.verify(message, signature) is case["validSignature"]
    assert verify_signature(case["publicKeyDid"], message, signature) is case["validSignature"]
    assert verify_signature(from_did.multikey(), message, signature) is case["validSignature"]

    assert from_did.verify(message, b"\x01\x02\x03") is False
    assert from_did.verify(b"\x01\x02\x03", signature) is False


@pytest.mark.parametrize(
    "case",
    [c for c in SIGNATURE_CASES if "high-s" in c["tags"]],
    ids=lambda c: c["algorithm"],
)
def test_high_s_fixture_is_rejected_only_for_its_s(case: dict[str, Any]) -> None:
    """Flipping S to n - S must make the fixture valid, so the rejection is the low-S rule."""
    key = parse_did_key(case["publicKeyDid"])
    signature = b64(case["signatureBase64"])
    order = ORDER[case["algorithm"]]
    s = int.from_bytes(signature[32:], "big")
    assert s > order // 2
    low = signature[:32] + (order - s).to_bytes(32, "big")
    assert key.verify(b64(case["messageBase64"]), low)


@pytest.mark.parametrize(
    "case",
    [c for c in SIGNATURE_CASES if "der-encoded" in c["tags"]],
    ids=lambda c: c["algorithm"],
)
def test_der_fixture_is_rejected_only_for_its_encoding(case: dict[str, Any]) -> None:
    """The same signature in compact low-S form must verify."""
    key = parse_did_key(case["publicKeyDid"])
    r, s = decode_dss_signature(b64(case["signatureBase64"]))
    order = ORDER[case["algorithm"]]
    s = min(s, order - s)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert key.verify(b64(case["messageBase64"]), compact)


@pytest.mark.parametrize(
    ("keypair_type", "case"), DIDKEY_CASES, ids=[c["publicDidKey"] for _, c in DIDKEY_CASES]
)
def test_w3c_didkey(keypair_type: type[Keypair], case: dict[str, Any]) -> None:
    if "privateKeyBytesHex" in case:
        private = bytes.fromhex(case["privateKeyBytesHex"])
    else:
        private = b58decode(case["privateKeyBytesBase58"])
    keypair = keypair_type.from_private_bytes(private)
    parsed = parse_did_key(case["publicDidKey"])

    assert keypair.did() == case["publicDidKey"]
    assert keypair.public_key == parsed
    assert parsed.did_key() == case["publicDidKey"]
    assert keypair.private_bytes() == private
