"""Who is calling a service (a feed generator, a labeler): the service token an AppView or PDS
sends on behalf of an account, signed with the account's repo key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from prometheus_client import Counter

from strata.core.crypto import PublicKey
from strata.core.jwt import JwtError, parse_jwt, service_jwt_issuer, verify_service_jwt
from strata.identity import IdentityNotFound, IdentityResolver, InvalidIdentifier, ResolutionFailed
from strata.net.errors import XrpcError, upstream_failure

AUTH_FAILURES = Counter(
    "strata_service_auth_failures_total", "Service tokens refused", ["service", "error"]
)


REFRESH_AFTER: Final = 60.0
"""Seconds after which a cached DID document is fetched again when a signature fails."""


class ServiceAuth:
    """Verifies `Authorization: Bearer <service JWT>` addressed to `service_did`."""

    def __init__(
        self,
        resolver: IdentityResolver,
        service_did: str,
        service: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolver = resolver
        self.service_did = service_did
        self.service = service
        self.clock = clock

    def _refused(self, error: str, message: str) -> XrpcError:
        AUTH_FAILURES.labels(self.service, error).inc()
        return XrpcError(401, error, message)

    async def viewer(self, request: web.Request, nsid: str) -> str | None:
        """The DID of the verified caller, None for an anonymous request; 401 for a token that
        does not verify (it is never silently ignored)."""
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._refused("AuthenticationRequired", "Unexpected authorization type")
        token = token.strip()
        now = self.clock()
        try:
            issuer = service_jwt_issuer(token)
            # Cheap checks first, so that a stray or stale token costs no DID resolution.
            jwt = parse_jwt(token)
            jwt.check_time(now)
            if jwt.payload.get("aud") != self.service_did:
                raise JwtError(
                    f"jwt audience does not match service did {self.service_did}",
                    "BadJwtAudience",
                )
            lxm = jwt.payload.get("lxm")
            if lxm is not None and lxm != nsid:
                raise JwtError(
                    f'bad jwt lexicon method ("lxm"). must match: {nsid}', "BadJwtLexiconMethod"
                )
            key, age = await self._signing_key(issuer)
            try:
                verify_service_jwt(token, key, self.service_did, None, now)
            except JwtError as exc:
                # The account may have rotated its key since its document was cached; look
                # again, but not for a document just fetched, so that forged tokens cannot
                # make every request a directory lookup.
                if exc.name != "BadJwtSignature" or age < REFRESH_AFTER:
                    raise
                self.resolver.forget(issuer)
                key, _ = await self._signing_key(issuer)
                verify_service_jwt(token, key, self.service_did, None, now)
        except JwtError as exc:
            raise self._refused(exc.name, str(exc)) from exc
        return issuer

    async def _signing_key(self, did: str) -> tuple[PublicKey, float]:
        """The DID's signing key, and how many seconds ago its document was fetched."""
        try:
            resolved = await self.resolver.resolve_did(did)
        except (IdentityNotFound, InvalidIdentifier) as exc:
            raise JwtError(f"could not resolve iss did: {exc}", "BadJwtIss") from exc
        except ResolutionFailed as exc:
            AUTH_FAILURES.labels(self.service, "UpstreamFailure").inc()
            raise upstream_failure(f"could not resolve iss did: {exc}") from exc
        key = resolved.value.signing_key()
        if key is None:
            raise JwtError("iss did has no atproto signing key", "BadJwtIss")
        return key, resolved.age
