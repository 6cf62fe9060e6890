"""JSON Web Tokens as atproto uses them.

Two kinds: session tokens a PDS issues to its own clients (HS256 with the PDS's secret, as the
reference PDS does), and inter-service tokens an account signs with its repo signing key
(ES256K or ES256, compact low-S signatures) so that an AppView, a feed generator or another PDS
can tell who is calling and for which method (`lxm`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from strata.core.crypto import Keypair, PublicKey
from strata.core.errors import CoreError

SESSION_TOKEN_TYPES: Final = ("at+jwt", "refresh+jwt", "dpop+jwt")

SERVICE_JWT_LIFETIME: Final = 60
"""Seconds a service token lives unless the caller asks otherwise (the reference's default)."""


class JwtError(CoreError):
    """A token is malformed, forged, expired, or meant for someone else.

    `name` is the error name the reference services answer with for this failure.
    """

    def __init__(self, message: str, name: str = "BadJwt", *, expired: bool = False) -> None:
        super().__init__(message)
        self.name = name
        self.expired = expired


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    if "=" in text:
        raise JwtError("token segments must be unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError("token segment is not base64url") from exc


def _encode_segment(obj: dict[str, Any]) -> str:
    return _b64encode(json.dumps(obj, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class Jwt:
    """A parsed, not yet verified token."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes

    def check_time(self, now: float) -> None:
        """Raise if the token has expired at `now` (seconds since the epoch)."""
        exp = self.payload.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise JwtError("token has no expiry")
        if now >= exp:
            raise JwtError("token has expired", "JwtExpired", expired=True)


def parse_jwt(token: str) -> Jwt:
    """Split and decode a compact JWT; nothing is verified yet."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("token must have three segments")
    try:
        header = json.loads(_b64decode(parts[0]))
        payload = json.loads(_b64decode(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JwtError("token header or payload is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JwtError("token header and payload must be objects")
    return Jwt(header, payload, f"{parts[0]}.{parts[1]}".encode(), _b64decode(parts[2]))


def encode_hs256(payload: dict[str, Any], secret: bytes, typ: str) -> str:
    """A token signed with HMAC-SHA256 under `secret`."""
    signing_input = f"{_encode_segment({'typ': typ, 'alg': 'HS256'})}.{_encode_segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64encode(mac)}"


def verify_hs256(jwt: Jwt, secret: bytes, now: float) -> dict[str, Any]:
    """The payload of a parsed HS256 token signed with `secret` and unexpired at `now`."""
    if jwt.header.get("alg") != "HS256":
        raise JwtError("token algorithm must be HS256")
    expected = hmac.new(secret, jwt.signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, jwt.signature):
        raise JwtError("token signature does not verify")
    jwt.check_time(now)
    return jwt.payload


def sign_service_jwt(
    keypair: Keypair,
    iss: str,
    aud: str,
    lxm: str | None,
    now: float,
    exp: int | None = None,
) -> str:
    """An inter-service token from `iss` to `aud` for method `lxm`, signed by `keypair`."""
    iat = int(now)
    payload: dict[str, Any] = {
        "iat": iat,
        "iss": iss,
        "aud": aud,
        "exp": exp if exp is not None else iat + SERVICE_JWT_LIFETIME,
        "jti": secrets.token_hex(16),
    }
    if lxm is not None:
        payload["lxm"] = lxm
    signing_input = (
        f"{_encode_segment({'typ': 'JWT', 'alg': keypair.jwt_alg})}.{_encode_segment(payload)}"
    )
    return f"{signing_input}.{_b64encode(keypair.sign(signing_input.encode()))}"


def service_jwt_issuer(token: str) -> str:
    """The DID that claims to have signed a service token (before the signature is checked)."""
    iss = parse_jwt(token).payload.get("iss")
    if not isinstance(iss, str) or not iss.startswith("did:"):
        raise JwtError("jwt iss is not a valid did", "BadJwtIss")
    return iss.split("#", 1)[0]


def verify_service_jwt(
    token: str, key: PublicKey, aud: str | None, lxm: str | None, now: float
) -> dict[str, Any]:
    """The payload of a service token signed by `key`, addressed to `aud` for method `lxm`.

    `aud` None accepts any audience; `lxm` None skips the method check.
    """
    jwt = parse_jwt(token)
    if jwt.header.get("typ") in SESSION_TOKEN_TYPES:
        raise JwtError("a session token cannot be used as a service token", "BadJwtType")
    if jwt.header.get("alg") not in ("ES256K", "ES256"):
        raise JwtError("service token algorithm must be ES256K or ES256")
    jwt.check_time(now)
    if aud is not None and jwt.payload.get("aud") != aud:
        raise JwtError(f"jwt audience does not match service did {aud}", "BadJwtAudience")
    if lxm is not None and jwt.payload.get("lxm") != lxm:
        raise JwtError(f'bad jwt lexicon method ("lxm"). must match: {lxm}', "BadJwtLexiconMethod")
    if not key.verify(jwt.signing_input, jwt.signature):
        raise JwtError("jwt signature does not match jwt issuer", "BadJwtSignature")
    return jwt.payload
