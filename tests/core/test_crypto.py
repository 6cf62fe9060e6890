"""Keys, signatures, multibase and did:key."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from strata.core.cid import encode_uvarint
from strata.core.crypto import (
    ES256,
    ES256K,
    P256_PUB,
    SECP256K1_PUB,
    K256Keypair,
    K256PublicKey,
    Keypair,
    P256Keypair,
    P256PublicKey,
    b58decode,
    b58encode,
    format_did_key,
    multibase_decode,
    multibase_encode,
    parse_did_key,
    parse_multikey,
    parse_public_key,
    verify_signature,
)
from strata.core.errors import CoreError, CryptoError, DecodeError

K256_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

CURVES = [
    pytest.param(K256Keypair, K256_N, ES256K, "did:key:zQ3s", id="k256"),
    pytest.param(P256Keypair, P256_N, ES256, "did:key:zDna", id="p256"),
]

K256 = K256Keypair.generate()
P256 = P256Keypair.generate()
BASE58_CHARS = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def split(signature: bytes) -> tuple[int, int]:
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


def join(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
def test_sign_verify_round_trip(kind: type[Keypair], order: int, alg: str, did_prefix: str) -> None:
    keypair = kind.generate()
    signature = keypair.sign(b"hello world")
    assert len(signature) == 64
    assert keypair.jwt_alg == alg
    assert keypair.public_key.verify(b"hello world", signature)
    assert not keypair.public_key.verify(b"hello world!", signature)
    assert verify_signature(keypair.did(), b"hello world", signature)
    assert verify_signature(keypair.public_key.multikey(), b"hello world", signature)
    assert keypair.did().startswith(did_prefix)


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
def test_signatures_are_always_low_s(
    kind: type[Keypair], order: int, alg: str, did_prefix: str
) -> None:
    keypair = kind.generate()
    for i in range(300):
        message = i.to_bytes(4, "big")
        r, s = split(keypair.sign(message))
        assert 0 < r < order
        assert 0 < s <= order // 2


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
def test_high_s_and_der_signatures_are_rejected(
    kind: type[Keypair], order: int, alg: str, did_prefix: str
) -> None:
    keypair = kind.generate()
    message = b"a commit"
    r, s = split(keypair.sign(message))
    assert keypair.public_key.verify(message, join(r, s))
    assert not keypair.public_key.verify(message, join(r, order - s))
    assert not keypair.public_key.verify(message, encode_dss_signature(r, s))
    assert not keypair.public_key.verify(message, join(r, s) + b"\0")
    assert not keypair.public_key.verify(message, join(r, s)[:63])
    assert not keypair.public_key.verify(message, join(0, s))
    assert not keypair.public_key.verify(message, join(r, 0))
    assert not keypair.public_key.verify(message, join(order, s))


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
def test_wrong_key_is_rejected(kind: type[Keypair], order: int, alg: str, did_prefix: str) -> None:
    signer, other = kind.generate(), kind.generate()
    signature = signer.sign(b"payload")
    assert not other.public_key.verify(b"payload", signature)
    assert not verify_signature(other.did(), b"payload", signature)
    other_curve = P256 if kind is K256Keypair else K256
    assert not other_curve.public_key.verify(b"payload", signature)


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
def test_did_key_round_trip(kind: type[Keypair], order: int, alg: str, did_prefix: str) -> None:
    keypair = kind.generate()
    public = keypair.public_key
    assert parse_did_key(keypair.did()) == public
    assert parse_multikey(public.multikey()) == public
    assert format_did_key(public) == keypair.did() == public.did_key()
    assert parse_public_key(public.compressed_bytes(), alg) == public
    assert hash(parse_did_key(keypair.did())) == hash(public)
    assert repr(public) == f"{type(public).__name__}({keypair.did()!r})"


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
def test_private_bytes_round_trip(
    kind: type[Keypair], order: int, alg: str, did_prefix: str
) -> None:
    keypair = kind.generate()
    secret = keypair.private_bytes()
    assert len(secret) == 32
    again = kind.from_private_bytes(secret)
    assert again.public_key == keypair.public_key
    assert secret.hex() not in repr(keypair)


@pytest.mark.parametrize(("kind", "order", "alg", "did_prefix"), CURVES)
@pytest.mark.parametrize(
    ("secret", "problem"),
    [(b"\x01" * 31, "32 bytes"), (b"\x01" * 33, "32 bytes"), (bytes(32), "out of range")],
)
def test_bad_private_bytes(
    kind: type[Keypair], order: int, alg: str, did_prefix: str, secret: bytes, problem: str
) -> None:
    with pytest.raises(CryptoError, match=problem):
        kind.from_private_bytes(secret)
    with pytest.raises(CryptoError, match="out of range"):
        kind.from_private_bytes(order.to_bytes(32, "big"))


def test_uncompressed_points_are_accepted_and_recompressed() -> None:
    uncompressed = bytes.fromhex(
        "04"
        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
        "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
    )
    key = parse_public_key(uncompressed, ES256)
    assert isinstance(key, P256PublicKey)
    assert key.compressed_bytes() == bytes.fromhex(
        "036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    )
    multikey = multibase_encode(encode_uvarint(P256_PUB) + uncompressed)
    assert parse_multikey(multikey) == key
    assert parse_did_key(key.did_key()) == key


def test_key_types() -> None:
    assert isinstance(parse_did_key(K256.did()), K256PublicKey)
    assert isinstance(parse_did_key(P256.did()), P256PublicKey)
    assert K256.public_key != P256.public_key


def test_parsed_keys_are_cached() -> None:
    assert parse_did_key(K256.did()) is parse_did_key(K256.did())


@pytest.mark.parametrize(
    ("text", "error", "problem"),
    [
        ("did:web:example.com", CryptoError, "not a did:key"),
        ("did:key:", DecodeError, "base58btc"),
        ("did:key:uAAAA", DecodeError, "base58btc"),
        ("did:key:z0OIl", DecodeError, "invalid base58 character"),
        ("did:key:z", DecodeError, "truncated varint"),
        ("did:key:z" + "1" * 200, CryptoError, "longer than"),
        (
            "did:key:" + multibase_encode(encode_uvarint(0xED) + bytes(32)),
            CryptoError,
            "unsupported key type",
        ),
        (
            "did:key:" + multibase_encode(encode_uvarint(SECP256K1_PUB) + b"\x02" * 32),
            CryptoError,
            "33-byte compressed",
        ),
        (
            "did:key:" + multibase_encode(encode_uvarint(SECP256K1_PUB) + b"\x02" + bytes(32)),
            CryptoError,
            "secp256k1",
        ),
        (
            "did:key:" + multibase_encode(encode_uvarint(P256_PUB) + b"\x05" + bytes(32)),
            CryptoError,
            "uncompressed SEC1 point",
        ),
        (
            "did:key:" + multibase_encode(encode_uvarint(P256_PUB) + b"\x02" + b"\xff" * 32),
            CryptoError,
            "P-256",
        ),
    ],
)
def test_malformed_did_keys(text: str, error: type[CoreError], problem: str) -> None:
    with pytest.raises(error, match=problem):
        parse_did_key(text)
    with pytest.raises(CoreError):
        verify_signature(text, b"message", bytes(64))


def test_unknown_algorithm() -> None:
    with pytest.raises(CryptoError, match="unsupported key algorithm"):
        parse_public_key(K256.public_key.compressed_bytes(), "EdDSA")


def test_base58_known_values() -> None:
    assert b58encode(b"") == ""
    assert b58encode(b"\0\0\x01") == "112"
    assert b58encode(b"Hello World!") == "2NEpo7TZRRrLZSi2U"
    assert b58decode("2NEpo7TZRRrLZSi2U") == b"Hello World!"
    assert multibase_encode(b"\0") == "z1"
    assert multibase_decode("z112") == b"\0\0\x01"


@given(st.binary(max_size=80))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data
    assert multibase_decode(multibase_encode(data)) == data


@given(st.text(max_size=120))
def test_random_text_raises_only_core_errors(text: str) -> None:
    for parse in (parse_did_key, parse_multikey, multibase_decode):
        with contextlib.suppress(CoreError):
            parse(text)


@given(st.text(alphabet=BASE58_CHARS, max_size=100))
def test_random_base58_keys_raise_only_core_errors(text: str) -> None:
    with contextlib.suppress(CoreError):
        parse_did_key("did:key:z" + text)
    with contextlib.suppress(CoreError):
        parse_multikey("z" + text)


@given(
    st.sampled_from([SECP256K1_PUB, P256_PUB]),
    st.sampled_from([b"", b"\x02", b"\x03", b"\x04"]),
    st.binary(max_size=70),
)
def test_random_points_raise_only_crypto_errors(code: int, head: bytes, body: bytes) -> None:
    try:
        key = parse_multikey(multibase_encode(encode_uvarint(code) + head + body))
    except CryptoError:
        return
    assert parse_did_key(key.did_key()) == key


@given(st.binary(max_size=100), st.binary(max_size=100))
def test_random_signatures_never_raise(message: bytes, signature: bytes) -> None:
    assert K256.public_key.verify(message, signature) is False
    assert P256.public_key.verify(message, signature) is False


@given(st.binary(min_size=64, max_size=64))
def test_random_compact_signatures_never_raise(signature: bytes) -> None:
    assert K256.public_key.verify(b"message", signature) is False
    assert P256.public_key.verify(b"message", signature) is False
