"""Who is calling: session tokens, app-password scopes, OAuth tokens, the operator, and login
rate limits.

Tokens are the reference PDS's: an HS256 access token (`typ: at+jwt`, two hours) and a refresh
token (`typ: refresh+jwt`, 90 days, with a `jti` the database remembers). A refresh rotates
the token; the old one keeps working for a short grace period so a client that lost the answer
can retry. App passwords give narrower scopes than the account password. OAuth access tokens
come as `Authorization: DPoP <token>` with a DPoP proof, and their scopes decide which methods
they reach (`strata.pds.oauth.scopes`).
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from strata.core.crypto import PublicKey
from strata.core.jwt import JwtError, encode_hs256, parse_jwt, verify_hs256, verify_service_jwt
from strata.net.basic_auth import decode_basic, is_admin
from strata.net.errors import XrpcError
from strata.pds.accounts import Account, AccountStore
from strata.pds.oauth.errors import OAuthError
from strata.pds.oauth.provider import AuthorizationServer, Grant
from strata.pds.oauth.scopes import Need, ScopeRefused, check

ACCESS: Final = "com.atproto.access"
APP_PASS: Final = "com.atproto.appPass"
APP_PASS_PRIVILEGED: Final = "com.atproto.appPassPrivileged"
REFRESH: Final = "com.atproto.refresh"
OAUTH: Final = "oauth"
SERVICE: Final = "service"
"""Credentials from a service token the account signed for this PDS and one method."""

ACCESS_LIFETIME: Final = 2 * 3600
REFRESH_LIFETIME: Final = 90 * 86400


def auth_required(message: str = "Authentication Required", name: str = "AuthMissing") -> XrpcError:
    return XrpcError(401, name, message)


def invalid_token(message: str) -> XrpcError:
    return XrpcError(400, "InvalidToken", message)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A verified caller."""

    did: str
    scope: str
    token_id: str | None = None
    oauth_scopes: frozenset[str] = frozenset()

    @property
    def app_password(self) -> bool:
        return self.scope in (APP_PASS, APP_PASS_PRIVILEGED)

    @property
    def limited(self) -> bool:
        """Whether the caller has less than a full session (an app password, OAuth)."""
        return self.app_password or self.scope == OAUTH


@dataclass(frozen=True, slots=True)
class Admin:
    """The operator, authenticated with the admin password."""


@dataclass(frozen=True, slots=True)
class Session:
    access_jwt: str
    refresh_jwt: str
    jti: str
    refresh_expires_at: int


class Tokens:
    """Issues and verifies session tokens for one PDS."""

    def __init__(self, secret: bytes, service_did: str) -> None:
        self.secret = secret
        self.service_did = service_did

    def issue(self, did: str, scope: str, jti: str | None = None) -> Session:
        now = int(time.time())
        jti = jti or secrets.token_urlsafe(24)
        access = encode_hs256(
            {
                "scope": scope,
                "aud": self.service_did,
                "sub": did,
                "iat": now,
                "exp": now + ACCESS_LIFETIME,
            },
            self.secret,
            "at+jwt",
        )
        refresh_exp = now + REFRESH_LIFETIME
        refresh = encode_hs256(
            {
                "scope": REFRESH,
                "aud": self.service_did,
                "sub": did,
                "jti": jti,
                "iat": now,
                "exp": refresh_exp,
            },
            self.secret,
            "refresh+jwt",
        )
        return Session(access, refresh, jti, refresh_exp * 1000)

    def verify(self, token: str, typ: str) -> dict[str, object]:
        """The payload of a token of this PDS, or the reference's error for why not."""
        try:
            jwt = parse_jwt(token)
        except JwtError as exc:
            raise invalid_token("Malformed token") from exc
        try:
            payload = verify_hs256(jwt, self.secret, time.time())
        except JwtError as exc:
            if exc.expired:
                raise XrpcError(400, "ExpiredToken", "Token has expired") from exc
            raise invalid_token("Token could not be verified") from exc
        if jwt.header.get("typ") != typ:
            raise invalid_token("Invalid token type")
        if payload.get("aud") != self.service_did or not isinstance(payload.get("sub"), str):
            raise invalid_token("Bad token aud")
        return payload


def authorization(request: web.Request) -> tuple[str, str] | None:
    """The (lower-case type, credentials) of the Authorization header; None when absent.

    Malformed headers and unknown types are refused as the reference refuses them.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    parts = header.split(" ")
    if len(parts) != 2 or not parts[1]:
        raise invalid_token("Malformed authorization header")
    kind = parts[0].lower()
    if kind not in ("basic", "bearer", "dpop"):
        raise invalid_token(f"Unsupported authorization type: {parts[0]}")
    return kind, parts[1]


def bearer(request: web.Request) -> str:
    """The bearer token of a request; 401 when there is none."""
    found = authorization(request)
    if found is None:
        raise auth_required()
    kind, token = found
    if kind != "bearer":
        raise invalid_token("Unexpected authorization type")
    return token


Verifier = Callable[[web.Request, str], Awaitable[Any]]

DPOP_NONCE_KEY: Final = web.RequestKey("strata_dpop_nonce", str)
"""The DPoP nonce to send back with the answer to a request that came with an OAuth token."""


def _default_need(scopes: tuple[str, ...]) -> Need:
    """What an OAuth token needs for a method open to session tokens with `scopes`: the
    account's own session only, or privileged app passwords too (identity operations), or
    any app password (records and blobs)."""
    if scopes == (ACCESS,):
        return Need.NONE
    if APP_PASS not in scopes:
        return Need.IDENTITY
    return Need.REPO


class Authenticator:
    """The verifiers the PDS's methods name."""

    def __init__(
        self,
        tokens: Tokens,
        accounts: AccountStore,
        admin_password: str,
        oauth: AuthorizationServer,
        signing_key: Callable[[str], PublicKey],
    ) -> None:
        self.tokens = tokens
        self.accounts = accounts
        self.admin_password = admin_password
        self.oauth = oauth
        self.signing_key = signing_key
        """The repository signing key of an account hosted here."""

    def _oauth_grant(self, request: web.Request, token: str) -> Grant:
        """The grant behind an OAuth access token; 401 with a `WWW-Authenticate` challenge
        (and a fresh nonce) when the token or its DPoP proof is refused."""
        nonce = self.oauth.dpop.nonces.current()
        request[DPOP_NONCE_KEY] = nonce
        url = self.oauth.endpoint(request.path)
        try:
            return self.oauth.authenticate(request.method, url, token, request.headers.get("DPoP"))
        except OAuthError as exc:
            error = "use_dpop_nonce" if exc.error == "use_dpop_nonce" else "invalid_token"
            challenge = f'DPoP error="{error}", error_description="{exc.description}", algs="ES256"'
            raise XrpcError(
                401,
                error,
                exc.description,
                headers={"WWW-Authenticate": challenge, "DPoP-Nonce": nonce},
            ) from exc

    def _account_for(self, did: str, allow_deactivated: bool, allow_takendown: bool) -> Account:
        account = self.accounts.get(did)
        if account is None:
            raise XrpcError(403, "AccountNotFound", "Account not found")
        if account.takedown_ref is not None and not allow_takendown:
            raise XrpcError(400, "AccountTakedown", "Account has been taken down")
        if account.deactivated_at is not None and not allow_deactivated:
            raise XrpcError(400, "AccountDeactivated", "Account is deactivated")
        return account

    def access(
        self,
        scopes: tuple[str, ...] = (ACCESS, APP_PASS, APP_PASS_PRIVILEGED),
        allow_deactivated: bool = False,
        allow_takendown: bool = False,
        oauth: Need | None = None,
    ) -> Verifier:
        """Access-token auth with one of `scopes`, or an OAuth token whose scopes grant
        `oauth` (by default, what matches `scopes`)."""
        need = oauth or _default_need(scopes)

        async def verify(request: web.Request, nsid: str) -> Credentials:
            found = authorization(request)
            if found is not None and found[0] == "dpop":
                grant = self._oauth_grant(request, found[1])
                try:
                    check(grant.scopes, need, nsid)
                except ScopeRefused as exc:
                    raise XrpcError(403, exc.error, exc.message) from exc
                self._account_for(grant.did, allow_deactivated, allow_takendown)
                return Credentials(grant.did, OAUTH, grant.token_id, grant.scopes)
            payload = self.tokens.verify(bearer(request), "at+jwt")
            scope = payload.get("scope")
            if scope not in scopes:
                raise invalid_token("Bad token scope")
            did = str(payload["sub"])
            self._account_for(did, allow_deactivated, allow_takendown)
            return Credentials(did, str(scope))

        return verify

    def access_or_service(self, allow_deactivated: bool = False) -> Verifier:
        """Access-token auth, or a service token that an account hosted here signed for this
        PDS and this method, as a service acting for the account presents it (a video service
        uploading the processed video, with a token from `getServiceAuth`). As the
        reference, a bearer token naming a method (`lxm`) is taken for a service token."""
        access = self.access(allow_deactivated=allow_deactivated)

        async def verify(request: web.Request, nsid: str) -> Credentials:
            found = authorization(request)
            if found is None or found[0] != "bearer" or not _names_method(found[1]):
                credentials: Credentials = await access(request, nsid)
                return credentials
            token = found[1]
            try:
                issuer = parse_jwt(token).payload.get("iss")
                if not isinstance(issuer, str) or not issuer.startswith("did:") or "#" in issuer:
                    raise JwtError("jwt iss is not the DID of an account", "BadJwtIss")
                self._account_for(issuer, allow_deactivated, allow_takendown=False)
                # The account is hosted here: its key is this PDS's own, with no lookup.
                key = self.signing_key(issuer)
                verify_service_jwt(token, key, self.tokens.service_did, nsid, time.time())
            except JwtError as exc:
                raise XrpcError(401, exc.name, str(exc)) from exc
            return Credentials(issuer, SERVICE)

        return verify

    def optional_access(self) -> Verifier:
        """Access-token auth if a token is sent; None otherwise."""
        strict = self.access(allow_deactivated=True, oauth=Need.ANY)

        async def verify(request: web.Request, nsid: str) -> Credentials | None:
            if "Authorization" not in request.headers:
                return None
            credentials: Credentials = await strict(request, nsid)
            return credentials

        return verify

    def self_or_admin(self) -> Verifier:
        """Optional auth: an account's access token, the operator, or nobody (None)."""
        account = self.optional_access()

        async def verify(request: web.Request, nsid: str) -> Credentials | Admin | None:
            found = authorization(request)
            if found is not None and found[0] == "basic":
                return await self.admin(request, nsid)
            credentials: Credentials | None = await account(request, nsid)
            return credentials

        return verify

    async def refresh(self, request: web.Request, nsid: str) -> Credentials:
        """Refresh-token auth (refreshSession, deleteSession)."""
        payload = self.tokens.verify(bearer(request), "refresh+jwt")
        if payload.get("scope") != REFRESH or not isinstance(payload.get("jti"), str):
            raise invalid_token("Bad token scope")
        return Credentials(str(payload["sub"]), REFRESH, str(payload["jti"]))

    async def admin(self, request: web.Request, nsid: str) -> Admin:
        """HTTP basic auth as `admin` with the operator password."""
        found = authorization(request)
        if found is None or found[0] != "basic":
            raise auth_required(name="AuthenticationRequired")
        if decode_basic(found[1]) is None:
            raise auth_required("Invalid authorization header", "AuthenticationRequired")
        if not is_admin(found[1], self.admin_password):
            raise auth_required("Invalid admin credentials", "AuthenticationRequired")
        return Admin()


def _names_method(token: str) -> bool:
    """Whether a bearer token names the method it is for (`lxm`), as service tokens do."""
    try:
        return parse_jwt(token).payload.get("lxm") is not None
    except JwtError:
        return False


SWEEP_ABOVE: Final = 10_000


class LoginLimiter:
    """Sliding-window limits on sign-in: attempts per account and client address (as the
    reference keys them: a stranger elsewhere cannot lock an account's owner out), failures
    per client address."""

    def __init__(
        self,
        per_account: int = 30,
        failures_per_ip: int = 100,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_account = per_account
        self.failures_per_ip = failures_per_ip
        self.window = window
        self.clock = clock
        self._attempts: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def _trim(self, events: deque[float], now: float) -> None:
        while events and events[0] <= now - self.window:
            events.popleft()

    def _sweep(self, now: float) -> None:
        """Forget keys with nothing in the window, so that a flood of identifiers or
        addresses does not grow memory without bound."""
        old = now - self.window
        if len(self._attempts) > SWEEP_ABOVE:
            for pair in [k for k, v in self._attempts.items() if not v or v[-1] <= old]:
                del self._attempts[pair]
        if len(self._failures) > SWEEP_ABOVE:
            for ip in [k for k, v in self._failures.items() if not v or v[-1] <= old]:
                del self._failures[ip]

    def check(self, identifier: str, ip: str) -> None:
        """Count an attempt; 429 when either limit is reached."""
        now = self.clock()
        self._sweep(now)
        attempts, failures = self._attempts[identifier.lower(), ip], self._failures[ip]
        self._trim(attempts, now)
        self._trim(failures, now)
        for events, limit in ((attempts, self.per_account), (failures, self.failures_per_ip)):
            if len(events) >= limit:
                reset = int(time.time() + self.window - (now - events[0]))
                raise XrpcError(
                    429,
                    "RateLimitExceeded",
                    "Rate Limit Exceeded",
                    headers={
                        "RateLimit-Limit": str(limit),
                        "RateLimit-Remaining": "0",
                        "RateLimit-Reset": str(reset),
                        "RateLimit-Policy": f"{limit};w={int(self.window)}",
                    },
                )
        attempts.append(now)

    def failed(self, ip: str) -> None:
        self._failures[ip].append(self.clock())
