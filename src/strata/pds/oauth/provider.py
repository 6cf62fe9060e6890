"""The authorization server's flows: a pushed authorization request, the user's decision on
it, the code exchanged for tokens, refreshes, revocation, and checking the tokens that come
back with XRPC calls. Rules and error names follow the reference provider
(`@atproto/oauth-provider`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from strata.core.errors import CoreError
from strata.core.syntax import validate_did, validate_handle
from strata.pds.oauth.clients import Client, Clients
from strata.pds.oauth.dpop import DpopProof, DpopVerifier
from strata.pds.oauth.errors import (
    OAuthError,
    invalid_dpop_proof,
    invalid_grant,
    invalid_request,
)
from strata.pds.oauth.scopes import ATPROTO, parse_scope
from strata.pds.oauth.store import AuthorizationRequest, OAuthStore, Token
from strata.pds.oauth.tokens import ACCESS_LIFETIME, AccessTokens, BadAccessToken

REQUEST_URI_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"
PAR_LIFETIME: Final = 300
AUTHORIZATION_INACTIVITY: Final = 300
"""Seconds a user has on the sign-in page, and a client to exchange its code."""
SESSION_LIFETIME: Final = {"none": 14 * 86400, "private_key_jwt": 2 * 365 * 86400}
REFRESH_LIFETIME: Final = {"none": 14 * 86400, "private_key_jwt": 91 * 86400}
"""Public clients must come back within two weeks, confidential ones within three months;
their authorization ends after two weeks and two years (the reference's lifetimes)."""
RESPONSE_MODES: Final = ("query", "fragment", "form_post")
MIN_VERIFIER: Final = 43


def _ms() -> int:
    return int(time.time() * 1000)


def _id(prefix: str, size: int) -> str:
    return prefix + secrets.token_hex(size)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Redirect:
    """Where the user's browser goes back to the client, and what it carries."""

    uri: str
    mode: str
    values: dict[str, str]

    def location(self) -> str:
        """The URL to redirect to (query or fragment modes)."""
        joiner = "#" if self.mode == "fragment" else ("&" if "?" in self.uri else "?")
        return f"{self.uri}{joiner}{urlencode(self.values)}"


@dataclass(frozen=True, slots=True)
class Grant:
    """A checked access token: whose it is and what it may do."""

    did: str
    scopes: frozenset[str]
    token_id: str
    client_id: str


class AuthorizationServer:
    """The PDS's OAuth provider (its issuer is the PDS's public URL)."""

    def __init__(
        self,
        store: OAuthStore,
        clients: Clients,
        dpop: DpopVerifier,
        tokens: AccessTokens,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clients = clients
        self.dpop = dpop
        self.tokens = tokens
        self.issuer = issuer
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def endpoint(self, path: str) -> str:
        """The URL of one of the server's endpoints (what DPoP proofs name in `htu`)."""
        return f"{self.issuer}{path}"

    # Pushed authorization requests (RFC 9126)

    async def push(self, form: dict[str, str], dpop: str | None) -> dict[str, Any]:
        """Store an authorization request; its `request_uri` and lifetime."""
        # The proof first: a client told to use a nonce retries with a new assertion.
        proof = self._proof(dpop, "POST", "/oauth/par") if dpop is not None else None
        client = await self.clients.get(form.get("client_id", ""))
        client_auth = self.clients.authenticate(client, form)
        parameters = self._parameters(client, form, proof)
        request_id = _id("req-", 16)
        expires = self._now_ms() + PAR_LIFETIME * 1000
        self.store.add_request(
            AuthorizationRequest(
                request_id, client.client_id, client_auth, parameters, expires, None, None, None
            )
        )
        return {"request_uri": REQUEST_URI_PREFIX + request_id, "expires_in": PAR_LIFETIME}

    def _parameters(
        self, client: Client, form: dict[str, str], proof: DpopProof | None
    ) -> dict[str, Any]:
        for unsupported in ("request", "request_uri", "claims", "id_token_hint", "nonce"):
            if unsupported in form:
                raise invalid_request(f'Unsupported "{unsupported}" parameter')
        if form.get("response_type") != "code":
            raise OAuthError(
                "unsupported_response_type", 'atproto only supports the "code" response_type'
            )
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is None:
            if len(client.redirect_uris) != 1:
                raise invalid_request('Missing "redirect_uri"')
            redirect_uri = client.redirect_uris[0]
        if not client.redirect_allowed(redirect_uri):
            raise invalid_request(f"Invalid redirect_uri {redirect_uri}")
        requested = form.get("scope") or " ".join(sorted(client.scopes))
        scopes = parse_scope(requested)
        if ATPROTO not in scopes:
            raise OAuthError("invalid_scope", 'The "atproto" scope is required')
        if not set(scopes) <= client.scopes:
            raise OAuthError("invalid_scope", "Scope not declared in the client's metadata")
        if not form.get("code_challenge"):
            raise invalid_request("Use of PKCE is required")
        if form.get("code_challenge_method") != "S256":
            raise invalid_request('atproto requires use of "S256" code_challenge_method')
        mode = form.get("response_mode", "query")
        if mode not in RESPONSE_MODES:
            raise invalid_request(f"Unsupported response_mode {mode!r}")
        hint = form.get("login_hint", "").lower()
        if hint:
            try:
                validate_did(hint) if hint.startswith("did:") else validate_handle(hint)
            except CoreError as exc:
                raise invalid_request(f'Invalid login_hint "{hint}"') from exc
        jkt = form.get("dpop_jkt") or (proof.jkt if proof else None)
        if proof is not None and jkt != proof.jkt:
            raise OAuthError("invalid_dpop_key_binding", "DPoP proof does not match dpop_jkt")
        if jkt is None:
            raise invalid_dpop_proof("DPoP proof required")
        return {
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": form.get("state", ""),
            "code_challenge": form["code_challenge"],
            "response_mode": mode,
            "login_hint": hint,
            "prompt": form.get("prompt", ""),
            "dpop_jkt": jkt,
        }

    # The user's decision

    def pending(self, client_id: str, request_uri: str, device_id: str) -> AuthorizationRequest:
        """The request the sign-in page is about, bound to the browser (`device_id`) that
        opened it first; `invalid_request` or `access_denied` when it cannot go on."""
        if not request_uri.startswith(REQUEST_URI_PREFIX):
            raise invalid_request("Invalid request_uri")
        request = self.store.request(request_uri[len(REQUEST_URI_PREFIX) :])
        if request is None:
            raise invalid_request("Unknown request_uri")
        problem = None
        if request.did is not None:
            problem = "This request was already authorized"
        elif request.expires_at < self._now_ms():
            problem = "This request has expired"
        elif client_id and request.client_id != client_id:
            problem = "This request was initiated for another client"
        elif request.device_id is not None and request.device_id != device_id:
            problem = "This request was initiated from another device"
        if problem is not None:
            self.store.delete_request(request.id)
            raise OAuthError("access_denied", problem)
        expires = self._now_ms() + AUTHORIZATION_INACTIVITY * 1000
        self.store.bind_device(request.id, device_id, expires)
        return request

    def _redirect(self, request: AuthorizationRequest, values: dict[str, str]) -> Redirect:
        params = request.parameters
        state = {"state": params["state"]} if params.get("state") else {}
        return Redirect(
            params["redirect_uri"], params["response_mode"], {**values, **state, "iss": self.issuer}
        )

    def approve(self, request: AuthorizationRequest, did: str) -> Redirect:
        """The user signed in and allowed the request: a code for the client."""
        code = _id("cod-", 32)
        expires = self._now_ms() + AUTHORIZATION_INACTIVITY * 1000
        self.store.authorize(request.id, did, code, request.parameters, expires)
        return self._redirect(request, {"code": code})

    def deny(self, request: AuthorizationRequest) -> Redirect:
        """The user refused: the client is told `access_denied`."""
        self.store.delete_request(request.id)
        return self._redirect(
            request, {"error": "access_denied", "error_description": "Access denied"}
        )

    # The token endpoint

    async def token(self, form: dict[str, str], dpop: str | None) -> dict[str, Any]:
        """Tokens for a code or a refresh token."""
        if dpop is None:
            raise invalid_dpop_proof("DPoP proof required")
        proof = self._proof(dpop, "POST", "/oauth/token")
        client = await self.clients.get(form.get("client_id", ""))
        client_auth = self.clients.authenticate(client, form)
        grant_type = form.get("grant_type")
        if grant_type not in client.metadata["grant_types"]:
            raise invalid_grant(f'"{grant_type}" grant type is not allowed for this client')
        if grant_type == "authorization_code":
            return self._exchange_code(client, client_auth, proof, form)
        return self._refresh(client, client_auth, proof, form)

    def _check_binding(
        self, client: Client, client_auth: dict[str, Any], proof: DpopProof, was: dict[str, Any]
    ) -> None:
        if was["client_id"] != client.client_id:
            raise invalid_grant("Token was not issued to this client")
        if was["client_auth"].get("method") != client_auth["method"]:
            raise invalid_grant("Client authentication method mismatch")
        if was["client_auth"].get("kid") != client_auth.get("kid"):
            raise invalid_grant("The session was initiated with a different client key")
        if was["dpop_jkt"] != proof.jkt:
            raise invalid_grant("DPoP proof does not match the expected JKT")

    def _exchange_code(
        self, client: Client, client_auth: dict[str, Any], proof: DpopProof, form: dict[str, str]
    ) -> dict[str, Any]:
        code = form.get("code", "")
        request = self.store.consume_code(code) if code.startswith("cod-") else None
        if request is None or request.did is None:
            replayed = self.store.token_by_code(code) if code else None
            if replayed is not None:
                # A code used twice was stolen: the authorization it gave ends too.
                self.store.delete_token(replayed.id)
            raise invalid_grant("Invalid code")
        params = request.parameters
        self._check_binding(
            client, client_auth, proof,
            {"client_id": request.client_id, "client_auth": request.client_auth,
             "dpop_jkt": params["dpop_jkt"]},
        )  # fmt: skip
        if request.expires_at < self._now_ms():
            raise invalid_grant("This code has expired")
        if form.get("redirect_uri") != params["redirect_uri"]:
            raise invalid_grant(
                "The redirect_uri parameter must match the one used in the authorization request"
            )
        verifier = form.get("code_verifier")
        if not verifier:
            raise invalid_grant("code_verifier is required")
        if len(verifier) < MIN_VERIFIER:
            raise invalid_grant("code_verifier too short")
        if not hmac.compare_digest(_s256(verifier), params["code_challenge"]):
            raise invalid_grant("Invalid code_verifier")
        now = self._now_ms()
        token = Token(
            _id("tok-", 16), request.did, client.client_id, client_auth, params,
            params["scope"], _id("ref-", 32), now, now, self._expiry(client_auth, now, now),
        )  # fmt: skip
        self.store.add_token(token, code)
        return self._answer(token)

    def _expiry(self, client_auth: dict[str, Any], now: int, created: int) -> int:
        session_end = created + SESSION_LIFETIME[client_auth["method"]] * 1000
        expires = min(now + ACCESS_LIFETIME * 1000, session_end)
        if expires - now <= 250:
            raise invalid_grant("Session expired")
        return expires

    def _refresh(
        self, client: Client, client_auth: dict[str, Any], proof: DpopProof, form: dict[str, str]
    ) -> dict[str, Any]:
        found = self.store.token_by_refresh(form.get("refresh_token", ""))
        if found is None:
            raise invalid_grant("Invalid refresh token")
        token, current = found
        if not current:
            self.store.delete_token(token.id)
            raise invalid_grant("Refresh token replayed")
        try:
            self._check_binding(
                client, client_auth, proof,
                {"client_id": token.client_id, "client_auth": token.client_auth,
                 "dpop_jkt": token.dpop_jkt},
            )  # fmt: skip
            now = self._now_ms()
            method = token.client_auth["method"]
            if now - token.created_at > SESSION_LIFETIME[method] * 1000:
                raise invalid_grant("Session expired")
            if now - token.updated_at > REFRESH_LIFETIME[method] * 1000:
                raise invalid_grant("Refresh token expired")
            expires = self._expiry(token.client_auth, now, token.created_at)
        except OAuthError:
            self.store.delete_token(token.id)
            raise
        rotated = self.store.rotate(token, _id("tok-", 16), _id("ref-", 32), now, expires)
        return self._answer(rotated)

    def _answer(self, token: Token) -> dict[str, Any]:
        expires = token.expires_at // 1000
        access = self.tokens.sign(
            token.id, token.did, token.client_id, token.scope, token.dpop_jkt, expires
        )
        return {
            "access_token": access,
            "token_type": "DPoP",
            "refresh_token": token.refresh_token,
            "scope": token.scope,
            "expires_in": max(0, expires - int(self._clock())),
            "sub": token.did,
        }

    # Revocation (RFC 7009)

    async def revoke(self, form: dict[str, str], dpop: str | None) -> None:
        """End the authorization a token (access, refresh, or code) belongs to; unknown tokens
        are not an error."""
        if dpop is not None:
            self._proof(dpop, "POST", "/oauth/revoke")
        client = await self.clients.get(form.get("client_id", ""))
        self.clients.authenticate(client, form)
        value = form.get("token", "")
        token: Token | None = None
        if value.startswith("ref-"):
            found = self.store.token_by_refresh(value)
            token = found[0] if found else None
        elif value.startswith("cod-"):
            token = self.store.token_by_code(value)
        elif value.count(".") == 2:
            try:
                token = self.store.token(str(self.tokens.verify(value)["jti"]))
            except BadAccessToken:
                token = None
        if token is not None and token.client_id == client.client_id:
            self.store.delete_token(token.id)

    # Tokens coming back with XRPC calls

    def authenticate(self, method: str, url: str, access: str, dpop: str | None) -> Grant:
        """The grant behind a `DPoP` access token sent with a request to `url`."""
        if dpop is None:
            raise invalid_dpop_proof("DPoP proof required")
        proof = self.dpop.verify(dpop, method, url, access)
        try:
            claims = self.tokens.verify(access)
        except BadAccessToken as exc:
            raise OAuthError("invalid_token", str(exc), 401) from exc
        if (claims.get("cnf") or {}).get("jkt") != proof.jkt:
            raise OAuthError("invalid_token", "DPoP proof was not signed with the token's key", 401)
        token = self.store.token(str(claims["jti"]))
        if token is None or token.did != claims["sub"]:
            raise OAuthError("invalid_token", "Token has been revoked", 401)
        return Grant(token.did, frozenset(token.scope.split(" ")), token.id, token.client_id)

    def _proof(self, dpop: str, method: str, path: str) -> DpopProof:
        return self.dpop.verify(dpop, method, self.endpoint(path))
