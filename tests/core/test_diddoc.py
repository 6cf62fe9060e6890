"""Reading DID documents: current and older key formats, and hostile documents."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.crypto.multibase import multibase_encode
from strata.core.diddoc import DidDocumentError, parse_did_document
from strata.core.errors import CoreError

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


def test_current_format() -> None:
    key = K256Keypair.generate()
    doc = parse_did_document(
        {
            "id": DID,
            "alsoKnownAs": ["https://x", "at://Alice.Test"],
            "verificationMethod": [
                {
                    "id": "#atproto",
                    "type": "Multikey",
                    "publicKeyMultibase": key.public_key.multikey(),
                }
            ],
            "service": [
                {
                    "id": f"{DID}#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": "https://pds.example",
                },
            ],
        },
        DID,
    )
    assert doc.handle == "alice.test"
    assert doc.signing_key() == key.public_key
    assert doc.pds_endpoint == "https://pds.example"


def test_legacy_key_types() -> None:
    for keypair, kind in (
        (K256Keypair.generate(), "EcdsaSecp256k1VerificationKey2019"),
        (P256Keypair.generate(), "EcdsaSecp256r1VerificationKey2019"),
    ):
        raw = multibase_encode(keypair.public_key.compressed_bytes())
        doc = parse_did_document(
            {
                "id": DID,
                "verificationMethod": [
                    {"id": f"{DID}#atproto", "type": kind, "publicKeyMultibase": raw}
                ],
            },
            DID,
        )
        assert doc.signing_key() == keypair.public_key


def test_unusable_parts_are_absent_not_errors() -> None:
    doc = parse_did_document(
        {
            "id": DID,
            "verificationMethod": [
                {"id": "#atproto", "type": "Multikey", "publicKeyMultibase": "zz"}
            ],
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": "ftp://pds.example",
                }
            ],
        },
        DID,
    )
    assert doc.signing_key() is None and doc.pds_endpoint is None and doc.handle is None


def test_wrong_or_malformed_documents() -> None:
    for obj in (None, [], {"id": "did:plc:other"}, {"id": DID, "service": {}}):
        with pytest.raises(DidDocumentError):
            parse_did_document(obj, DID)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=25,
)
entries = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["#atproto", "#atproto_pds", f"{DID}#atproto"]) | st.text()},
        optional={
            "type": st.sampled_from(["Multikey", "AtprotoPersonalDataServer"]) | st.text(),
            "publicKeyMultibase": st.text(max_size=60),
            "serviceEndpoint": json_values,
        },
    )
    | json_values,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"id": st.just(DID)},
        optional={
            "alsoKnownAs": json_values | st.lists(st.text()),
            "verificationMethod": entries,
            "service": entries,
        },
    )
)
def test_fuzz_documents_never_crash(obj: dict[str, Any]) -> None:
    try:
        doc = parse_did_document(obj, DID)
    except CoreError:
        return
    assert doc.handle is None or isinstance(doc.handle, str)
    doc.signing_key()
    assert doc.pds_endpoint is None or doc.pds_endpoint.startswith("http")
