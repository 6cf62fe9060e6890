"""OAuth clients: who they are (their metadata document, fetched from the `client_id` URL, or
derived from a loopback client id), the rules their metadata must follow in the atproto
profile, where they may be sent back to, and how they authenticate at the token endpoint.

In production a client id is an `https://` URL whose host resolves to public addresses only;
with `--dev`, `http://` and private addresses are accepted too, for clients on the same
machine. Loopback client ids (`http://localhost?redirect_uri=...&scope=...`) are accepted
either way, as the reference PDS accepts them: they are public native clients that can only
send the user back to their own machine.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from strata.net.public_fetch import (
    TIMEOUT,
    FetchFailed,
    check_literal,
    fetch_json,
    outward_session,
)
from strata.pds.oauth.dpop import ReplayCache
from strata.pds.oauth.errors import (
    OAuthError,
    invalid_client,
    invalid_client_metadata,
    invalid_request,
)
from strata.pds.oauth.scopes import ATPROTO

LOOPBACK_ORIGIN: Final = "http://localhost"
LOOPBACK_REDIRECTS: Final = ("http://127.0.0.1/", "http://[::1]/")
ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX_AGE: Final = 60.0
AUTH_METHODS: Final = ("none", "private_key_jwt")
SIGNING_ALGORITHMS: Final = ("ES256",)
CACHE_SECONDS: Final = 600.0
CACHE_SIZE: Final = 1000


def _loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_client_id(client_id: str) -> bool:
    """Whether `client_id` is `http://localhost`, with nothing after it but a query."""
    rest = client_id[len(LOOPBACK_ORIGIN) :]
    return client_id.startswith(LOOPBACK_ORIGIN) and (not rest or rest[0] in "/?")


@dataclass(frozen=True)
class Client:
    """A client and its validated metadata."""

    client_id: str
    metadata: dict[str, Any]
    keys: KeySet | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        name = self.metadata.get("client_name")
        return name if isinstance(name, str) and name else self.client_id

    @property
    def auth_method(self) -> str:
        return str(self.metadata["token_endpoint_auth_method"])

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.metadata.get("scope", "")).split(" "))

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.metadata["redirect_uris"])

    def redirect_allowed(self, uri: str) -> bool:
        """Whether the client may be sent back to `uri`: one of its redirect URIs, where a
        loopback IP one registered without a port matches any port (RFC 8252, 7.3)."""
        if uri in self.redirect_uris:
            return True
        asked = urlsplit(uri)
        for registered in self.redirect_uris:
            known = urlsplit(registered)
            if (
                known.scheme == "http"
                and _loopback_ip(known.hostname or "")
                and known.port is None
                and asked.scheme == "http"
                and asked.hostname == known.hostname
                and asked.path == known.path
                and asked.query == known.query
            ):
                return True
        return False


def loopback_metadata(client_id: str) -> dict[str, Any]:
    """The metadata a loopback client id stands for (the atproto profile's rules)."""
    rest = client_id[len(LOOPBACK_ORIGIN) :]
    if rest.startswith("/"):
        rest = rest[1:]
    if rest and not rest.startswith("?"):
        raise invalid_client_metadata("Loopback client ids must not have a path")
    if "#" in rest:
        raise invalid_client_metadata("Loopback client ids must not have a fragment")
    scope = ATPROTO
    redirects: list[str] = []
    seen_scope = False
    for key, value in parse_qsl(rest[1:], keep_blank_values=True):
        if key == "scope" and not seen_scope:
            scope, seen_scope = value, True
        elif key == "redirect_uri":
            parts = urlsplit(value)
            if parts.scheme != "http" or not _loopback_ip(parts.hostname or ""):
                raise invalid_client_metadata(
                    f"Loopback redirect URIs must be http://127.0.0.1 or http://[::1]: {value}"
                )
            redirects.append(value)
        else:
            raise invalid_client_metadata(f"Unexpected loopback client id parameter {key!r}")
    if ATPROTO not in scope.split(" "):
        raise invalid_client_metadata('Loopback client ids must include the "atproto" scope')
    return {
        "client_id": client_id,
        "scope": scope,
        "redirect_uris": redirects or list(LOOPBACK_REDIRECTS),
        "response_types": ["code"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
        "dpop_bound_access_tokens": True,
    }


def _check_redirect(uri: object, native: bool, client_host: str, dev: bool) -> None:
    if not isinstance(uri, str):
        raise invalid_client_metadata("redirect_uris must be strings")
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise invalid_client_metadata(f"Redirect URI {uri} must not contain credentials")
    host = parts.hostname or ""
    if host == "localhost":
        raise invalid_client_metadata(
            f"Loopback redirect URI {uri} is not allowed (use explicit IPs instead)"
        )
    if _loopback_ip(host):
        # In development a web client on this machine is sent back to it too.
        if not (native or dev) or parts.scheme != "http":
            raise invalid_client_metadata(
                f"Loopback redirect URIs are only allowed for native apps, over http: {uri}"
            )
        return
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if dev:
            return
        raise invalid_client_metadata('Only loopback redirect URIs may use the "http" scheme')
    if native and "." in parts.scheme:
        # A private-use scheme: the client's domain, reversed (RFC 8252, 7.1).
        if parts.scheme != ".".join(reversed(client_host.split("."))):
            raise invalid_client_metadata(
                f"Private-use redirect scheme {parts.scheme!r} must be {client_host!r} reversed"
            )
        return
    raise invalid_client_metadata(f"Invalid redirect URI scheme {parts.scheme!r}")


def validate_metadata(client_id: str, metadata: Any, dev: bool) -> dict[str, Any]:
    """`metadata` if it follows the atproto profile's rules for `client_id`."""
    if not isinstance(metadata, dict):
        raise invalid_client_metadata("Client metadata must be a JSON object")
    if metadata.get("client_id") != client_id:
        raise invalid_client_metadata("client_id does not match")
    scope = metadata.get("scope")
    if not isinstance(scope, str) or ATPROTO not in scope.split(" "):
        raise invalid_client_metadata('Client metadata must include the "atproto" scope')
    grants = metadata.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or "authorization_code" not in grants:
        raise invalid_client_metadata('grant_types must include "authorization_code"')
    if unknown := [g for g in grants if g not in ("authorization_code", "refresh_token")]:
        raise invalid_client_metadata(f"Unsupported grant types {unknown}")
    if "code" not in metadata.get("response_types", ["code"]):
        raise invalid_client_metadata('response_types must include "code"')
    if metadata.get("dpop_bound_access_tokens") is not True:
        raise invalid_client_metadata('"dpop_bound_access_tokens" must be true')
    method = metadata.get("token_endpoint_auth_method")
    if method not in AUTH_METHODS:
        raise invalid_client_metadata(
            f'Unsupported client authentication method {method!r}: use "none" or "private_key_jwt"'
        )
    native = metadata.get("application_type", "web") == "native"
    if native and method != "none":
        raise invalid_client_metadata('Native clients must authenticate using "none"')
    if method == "private_key_jwt":
        if metadata.get("token_endpoint_auth_signing_alg") not in SIGNING_ALGORITHMS:
            raise invalid_client_metadata('private_key_jwt clients must sign with "ES256"')
        if ("jwks" in metadata) == ("jwks_uri" in metadata):
            raise invalid_client_metadata("private_key_jwt needs exactly one of jwks, jwks_uri")
    redirects = metadata.get("redirect_uris")
    if not isinstance(redirects, list) or not redirects:
        raise invalid_client_metadata("At least one redirect_uri is required")
    client_host = urlsplit(client_id).hostname or ""
    for uri in redirects:
        _check_redirect(uri, native, client_host, dev)
    return {**metadata, "grant_types": grants, "application_type": "native" if native else "web"}


class Clients:
    """Finds clients by id (metadata documents are cached for ten minutes) and authenticates
    them at the token endpoint."""

    def __init__(
        self,
        issuer: str,
        dev: bool,
        replay: ReplayCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.issuer = issuer
        self.dev = dev
        self._replay = replay
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Client]] = OrderedDict()

    async def start(self) -> None:
        """Open the session documents are fetched with (public addresses only, but in
        development)."""
        self._session = outward_session(self.dev, TIMEOUT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Clients.start() has not run"
        return self._session

    def _check_id(self, client_id: str) -> None:
        parts = urlsplit(client_id)
        if parts.fragment or parts.username or parts.password:
            raise invalid_client_metadata("Client ids must not have a fragment or credentials")
        if parts.scheme == "https" or (self.dev and parts.scheme == "http"):
            if not parts.hostname:
                raise invalid_client_metadata(f"Invalid client id {client_id!r}")
            return
        raise invalid_client_metadata(
            f"Client ids are https:// URLs of their metadata document, not {client_id!r}"
        )

    async def get(self, client_id: str) -> Client:
        """The client with `client_id`, or `invalid_client_metadata` saying why not."""
        if not client_id:
            raise invalid_request("client_id is required")
        if is_loopback_client_id(client_id):
            metadata = loopback_metadata(client_id)
            return Client(client_id, validate_metadata(client_id, metadata, self.dev))
        cached = self._cache.get(client_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        self._check_id(client_id)
        try:
            if not self.dev:
                check_literal(client_id)
            document = await fetch_json(self.session, client_id)
            metadata = validate_metadata(client_id, document, self.dev)
            keys = await self._keys(metadata)
        except FetchFailed as exc:
            raise invalid_client_metadata(f"Client metadata could not be read: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise invalid_client_metadata(f"Client metadata could not be read: {exc}") from exc
        client = Client(client_id, metadata, keys)
        self._cache[client_id] = (self._clock() + CACHE_SECONDS, client)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return client

    async def _keys(self, metadata: dict[str, Any]) -> KeySet | None:
        if metadata["token_endpoint_auth_method"] != "private_key_jwt":
            return None
        raw = metadata.get("jwks")
        if raw is None:
            uri = str(metadata["jwks_uri"])
            if not self.dev:
                check_literal(uri)
            raw = await fetch_json(self.session, uri)
        try:
            return KeySet.import_key_set(raw)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise invalid_client_metadata(f"Invalid client jwks: {exc}") from exc

    def authenticate(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        """How the client proved who it is at this request: `{"method": "none"}`, or
        `{"method": "private_key_jwt", "kid": ...}` after checking its assertion."""
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if client.auth_method == "none":
            if assertion_type or assertion:
                raise invalid_client("This client does not authenticate with a client assertion")
            return {"method": "none"}
        if assertion_type != ASSERTION_TYPE or not assertion:
            raise invalid_client(f'client_assertion_type must be "{ASSERTION_TYPE}"')
        assert client.keys is not None
        try:
            token = jwt.decode(assertion, client.keys, algorithms=list(SIGNING_ALGORITHMS))
        except (JoseError, ValueError, TypeError) as exc:
            raise invalid_client(f"Invalid client assertion: {exc}") from exc
        claims = token.claims
        now = self._clock()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise invalid_client("Client assertion iss and sub must be the client_id")
        if self.issuer not in audiences:
            raise invalid_client("Client assertion aud must be the authorization server")
        iat, jti = claims.get("iat"), claims.get("jti")
        if not isinstance(iat, int | float) or abs(now - iat) > ASSERTION_MAX_AGE:
            raise invalid_client("Client assertion is too old")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp < now:
            raise invalid_client("Client assertion has expired")
        if not isinstance(jti, str) or not self._replay.first_use(
            f"assertion:{client.client_id}:{jti}", 2 * ASSERTION_MAX_AGE
        ):
            raise OAuthError("invalid_grant", "private_key_jwt jti reused")
        return {"method": "private_key_jwt", "kid": token.header.get("kid")}
