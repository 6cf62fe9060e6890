"""Access tokens: JWTs (`typ: at+jwt`) the PDS signs with its OAuth key (ES256), bound to the
client's DPoP key (`cnf.jkt`), addressed to the PDS itself (`aud`), and named by a token id
(`jti`) that the database must still know for the token to work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

ACCESS_LIFETIME: Final = 3600
"""Seconds an access token lives (the reference's 60 minutes)."""


class BadAccessToken(Exception):
    """The token is not one of this server's, or it has expired."""


class AccessTokens:
    """Signs and verifies access tokens for one issuer."""

    def __init__(
        self,
        key: ECKey,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience
        self._clock = clock

    @property
    def kid(self) -> str:
        return self.key.thumbprint()

    def jwks(self) -> dict[str, Any]:
        """The public keys, as `/oauth/jwks` serves them."""
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def sign(
        self,
        token_id: str,
        did: str,
        client_id: str,
        scope: str,
        jkt: str | None,
        expires_at: int,
    ) -> str:
        """An access token for `did`, valid until `expires_at` (seconds)."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": did,
            "iat": int(self._clock()),
            "exp": expires_at,
            "jti": token_id,
            "scope": scope,
            "client_id": client_id,
        }
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.kid}
        return jwt.encode(header, claims, self.key)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of one of this server's unexpired access tokens."""
        try:
            decoded = jwt.decode(token, self.key, algorithms=["ES256"])
        except (JoseError, ValueError, TypeError) as exc:
            raise BadAccessToken("Malformed token") from exc
        claims = dict(decoded.claims)
        if decoded.header.get("typ") != "at+jwt":
            raise BadAccessToken("Invalid token type")
        if claims.get("iss") != self.issuer or claims.get("aud") != self.audience:
            raise BadAccessToken("Invalid token issuer or audience")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self._clock():
            raise BadAccessToken("Token expired")
        if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("sub"), str):
            raise BadAccessToken("Malformed token")
        return claims
