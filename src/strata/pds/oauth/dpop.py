"""DPoP proofs (RFC 9449): a client proves it holds the key a token is bound to by signing
each request (method, URL, time, a one-time `jti`, the server's current nonce, and for
resource requests the hash of the token).

Nonces come from an HMAC of the current minute under the PDS's secret, so any process of the
PDS computes the same ones; the previous, current and next nonces are accepted. A `jti` is
accepted once while its proof could be valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from strata.pds.oauth.errors import OAuthError, invalid_dpop_proof, use_dpop_nonce

ALGORITHMS: Final = ("ES256",)
NONCE_ROTATION: Final = 60.0
PROOF_MAX_AGE: Final = 190.0
"""How far a proof's `iat` may be from now: ten seconds of life plus the three minutes of
clock skew the reference tolerates."""
REPLAY_CAPACITY: Final = 200_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """The `ath` claim for an access token."""
    return b64url(hashlib.sha256(token.encode()).digest())


def normalize_htu(url: str) -> str:
    """A URL as the `htu` claim is compared: scheme, host and path, without query or
    fragment, default ports dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path or '/'}"


@dataclass(frozen=True, slots=True)
class DpopProof:
    """A checked proof: its `jti`, and the thumbprint of the key that signed it."""

    jti: str
    jkt: str


class Nonces:
    """The server's DPoP nonces."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret = hmac.new(secret, b"dpop-nonce", hashlib.sha256).digest()
        self._clock = clock

    def _at(self, counter: int) -> str:
        return b64url(hmac.new(self._secret, str(counter).encode(), hashlib.sha256).digest())

    def current(self) -> str:
        return self._at(int(self._clock() // NONCE_ROTATION))

    def valid(self, nonce: str) -> bool:
        counter = int(self._clock() // NONCE_ROTATION)
        return any(hmac.compare_digest(nonce, self._at(counter + d)) for d in (-1, 0, 1))


class ReplayCache:
    """Keys seen recently, each remembered until it expires (bounded: the oldest go first)."""

    def __init__(
        self, capacity: int = REPLAY_CAPACITY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity
        self._clock = clock

    def first_use(self, key: str, lifetime: float) -> bool:
        """Whether `key` is new; it is remembered for `lifetime` seconds either way."""
        now = self._clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now + lifetime
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


def _embedded_key(header: dict[str, Any]) -> ECKey:
    if header.get("typ") != "dpop+jwt":
        raise invalid_dpop_proof('DPoP proof must have typ "dpop+jwt"')
    if header.get("alg") not in ALGORITHMS:
        raise invalid_dpop_proof(f"Unsupported DPoP proof algorithm {header.get('alg')!r}")
    key = header.get("jwk")
    if not isinstance(key, dict) or "d" in key:
        raise invalid_dpop_proof("DPoP proof must carry a public key (jwk)")
    try:
        return ECKey.import_key(key)
    except (JoseError, ValueError, TypeError) as exc:
        raise invalid_dpop_proof(f"Invalid DPoP key: {exc}") from exc


class DpopVerifier:
    """Checks proofs against the request they came with."""

    def __init__(
        self,
        nonces: Nonces,
        replay: ReplayCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nonces = nonces
        self.replay = replay or ReplayCache()
        self._clock = clock

    def verify(
        self, proof: str, method: str, url: str, access_token: str | None = None
    ) -> DpopProof:
        """The proof, checked; an `OAuthError` (`invalid_dpop_proof` or `use_dpop_nonce`)
        says why not."""
        try:
            header = jws.extract_compact(proof.encode()).headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise invalid_dpop_proof("Malformed DPoP proof") from exc
        key = _embedded_key(header)
        try:
            claims = jwt.decode(proof, key, algorithms=list(ALGORITHMS)).claims
        except (JoseError, ValueError, TypeError) as exc:
            raise invalid_dpop_proof(f"Failed to verify DPoP proof: {exc}") from exc
        jti, iat, htu = claims.get("jti"), claims.get("iat"), claims.get("htu")
        if not isinstance(jti, str) or not jti:
            raise invalid_dpop_proof('DPoP "jti" missing')
        if not isinstance(iat, int | float) or abs(self._clock() - iat) > PROOF_MAX_AGE:
            raise invalid_dpop_proof('DPoP "iat" is missing or too far from now')
        if claims.get("htm") != method:
            raise invalid_dpop_proof('DPoP "htm" mismatch')
        if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):
            raise invalid_dpop_proof('DPoP "htu" mismatch')
        nonce = claims.get("nonce")
        if nonce is None:
            raise use_dpop_nonce()
        if not isinstance(nonce, str) or not self.nonces.valid(nonce):
            raise use_dpop_nonce('DPoP "nonce" mismatch')
        ath = claims.get("ath")
        if access_token is not None:
            if not isinstance(ath, str) or not hmac.compare_digest(ath, token_hash(access_token)):
                raise invalid_dpop_proof('DPoP "ath" mismatch')
        elif ath is not None:
            raise invalid_dpop_proof('DPoP "ath" claim not allowed')
        if not self.replay.first_use(f"dpop:{jti}", 2 * PROOF_MAX_AGE):
            raise invalid_dpop_proof("DPoP proof replayed")
        return DpopProof(jti, key.thumbprint())


def nonce_header(nonces: Nonces) -> dict[str, str]:
    """The header that gives a client the current nonce."""
    return {"DPoP-Nonce": nonces.current()}


def with_nonce(error: OAuthError, nonces: Nonces) -> OAuthError:
    """`error` carrying the current nonce, so that the client can retry at once."""
    error.headers.update(nonce_header(nonces))
    return error
