"""The OAuth endpoints on the PDS's HTTP application: the discovery documents, `/oauth/par`,
the sign-in page at `/oauth/authorize`, `/oauth/token`, `/oauth/revoke` and `/oauth/jwks`."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import Counter

from strata.net.errors import XrpcError
from strata.net.logs import log_event
from strata.net.server import json_response
from strata.pds.oauth.errors import OAuthError
from strata.pds.oauth.page import error_page, form_post_page, sign_in_page
from strata.pds.oauth.provider import Redirect
from strata.pds.oauth.scopes import SUPPORTED
from strata.pds.passwords import verify_password

if TYPE_CHECKING:
    from strata.pds.service import Pds

log = logging.getLogger("strata.pds.oauth")

DEVICE_COOKIE: Final = "strata-oauth-device"
CSRF_COOKIE: Final = "strata-oauth-csrf"
MAX_FORM_BYTES: Final = 64 * 1024
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}

GRANTS = Counter(
    "strata_pds_oauth_grants_total",
    "OAuth authorizations decided, tokens issued and refused, by outcome",
    ["step", "outcome"],
)


class SignInRefused(Exception):
    """The user could not sign in; the message says why, on the page."""


def authorization_server_metadata(issuer: str) -> dict[str, Any]:
    """`/.well-known/oauth-authorization-server`, in the reference's shape."""
    algorithms = ["ES256"]
    return {
        "issuer": issuer,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "scopes_supported": list(SUPPORTED),
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "ui_locales_supported": ["en-US"],
        "display_values_supported": ["page"],
        "authorization_response_iss_parameter_supported": True,
        "jwks_uri": f"{issuer}/oauth/jwks",
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "pushed_authorization_request_endpoint": f"{issuer}/oauth/par",
        "require_pushed_authorization_requests": True,
        "dpop_signing_alg_values_supported": algorithms,
        "protected_resources": [issuer],
        "client_id_metadata_document_supported": True,
        "prompt_values_supported": ["none", "login", "consent"],
    }


def protected_resource_metadata(issuer: str) -> dict[str, Any]:
    """`/.well-known/oauth-protected-resource`: this PDS is its own authorization server."""
    return {
        "resource": issuer,
        "authorization_servers": [issuer],
        "scopes_supported": [],
        "bearer_methods_supported": ["header"],
        "resource_documentation": "https://atproto.com",
    }


async def _form(request: web.Request) -> dict[str, str]:
    """The request's parameters (form-encoded, or JSON), first value of each."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "Request body too large", 413)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise OAuthError("invalid_request", "Invalid JSON body") from exc
        if not isinstance(body, dict):
            raise OAuthError("invalid_request", "The body must be an object")
        return {k: v if isinstance(v, str) else str(v) for k, v in body.items()}
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Unsupported content type")
    posted = await request.post()
    return {k: v for k, v in posted.items() if isinstance(v, str)}


def install(app: web.Application, pds: Pds) -> None:
    """Add the OAuth endpoints of `pds` to `app`."""
    server = pds.oauth
    issuer = server.issuer

    def nonce_headers() -> dict[str, str]:
        return {**NO_STORE, "DPoP-Nonce": server.dpop.nonces.current()}

    def endpoint(
        step: str, work: Callable[[dict[str, str], str | None], Awaitable[dict[str, Any] | None]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                answer = await work(await _form(request), request.headers.get("DPoP"))
            except OAuthError as exc:
                GRANTS.labels(step, exc.error).inc()
                if exc.error != "use_dpop_nonce":
                    log.debug("oauth %s refused: %s %s", step, exc.error, exc.description)
                return json_response(
                    exc.body(), exc.status, headers={**nonce_headers(), **exc.headers}
                )
            GRANTS.labels(step, "ok").inc()
            status = 201 if step == "par" else 200
            return json_response(answer or {}, status, headers=nonce_headers())

        return handle

    async def par(form: dict[str, str], dpop: str | None) -> dict[str, Any]:
        return await server.push(form, dpop)

    async def token(form: dict[str, str], dpop: str | None) -> dict[str, Any]:
        answer = await server.token(form, dpop)
        if form.get("grant_type") == "authorization_code":
            log_event(log, "oauth token issued", did=answer["sub"], client=form.get("client_id"))
        return answer

    async def revoke(form: dict[str, str], dpop: str | None) -> None:
        await server.revoke(form, dpop)

    def page(
        html: str, status: int = 200, redirect: str = "", script_nonce: str = ""
    ) -> web.Response:
        # The page may only send its form here, and the browser on to the client.
        targets = " ".join(filter(None, ["'self'", redirect]))
        script = f"'nonce-{script_nonce}'" if script_nonce else "'none'"
        policy = (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; "
            f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
        )
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            headers={
                **NO_STORE,
                "Content-Security-Policy": policy,
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin",
            },
        )

    def back_to_client(redirect: Redirect) -> web.Response:
        target = urlsplit(redirect.uri)
        origin = f"{target.scheme}://{target.netloc}" if target.netloc else ""
        if redirect.mode == "form_post":
            nonce = secrets.token_urlsafe(16)
            html = form_post_page(redirect.uri, redirect.values, nonce)
            return page(html, redirect=origin, script_nonce=nonce)
        return web.Response(status=303, headers={**NO_STORE, "Location": redirect.location()})

    def show_sign_in(
        request: web.Request, request_uri: str, error: str = "", status: int = 200
    ) -> Callable[[Any], Awaitable[web.Response]]:
        async def render(pending: Any) -> web.Response:
            client = await server.clients.get(pending.client_id)
            csrf = secrets.token_urlsafe(24)
            redirect_uri = pending.parameters["redirect_uri"]
            html = sign_in_page(
                client, request_uri, pending.parameters["scope"].split(" "), redirect_uri,
                csrf, pending.parameters.get("login_hint", ""), pds.config.hostname, error,
            )  # fmt: skip
            target = urlsplit(redirect_uri)
            response = page(html, status, redirect=f"{target.scheme}://{target.netloc}")
            response.set_cookie(
                CSRF_COOKIE, csrf, path="/oauth/authorize", httponly=True, samesite="Strict",
                secure=issuer.startswith("https://"),
            )  # fmt: skip
            return response

        return render

    async def authorize_page(request: web.Request) -> web.Response:
        request_uri = request.query.get("request_uri", "")
        client_id = request.query.get("client_id", "")
        device = request.cookies.get(DEVICE_COOKIE) or "dev-" + secrets.token_hex(16)
        if not request_uri:
            return page(error_page("request_uri is required (pushed authorization requests)"), 400)
        try:
            pending = server.pending(client_id, request_uri, device)
            response = await show_sign_in(request, request_uri)(pending)
        except OAuthError as exc:
            GRANTS.labels("authorize", exc.error).inc()
            return page(error_page(exc.description), 400)
        response.set_cookie(
            DEVICE_COOKIE, device, path="/oauth", httponly=True, samesite="Lax",
            secure=issuer.startswith("https://"), max_age=365 * 86400,
        )  # fmt: skip
        return response

    async def authorize_decision(request: web.Request) -> web.Response:
        try:
            form = await _form(request)
        except OAuthError as exc:
            return page(error_page(exc.description), 400)
        request_uri = form.get("request_uri", "")
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if not csrf or not secrets.compare_digest(csrf, form.get("csrf", "")):
            return page(error_page("The sign-in form expired; start again from the app."), 400)
        try:
            device = request.cookies.get(DEVICE_COOKIE, "")
            pending = server.pending(form.get("client_id", ""), request_uri, device)
        except OAuthError as exc:
            GRANTS.labels("authorize", exc.error).inc()
            return page(error_page(exc.description), 400)
        if form.get("decision") != "allow":
            GRANTS.labels("authorize", "denied").inc()
            return back_to_client(server.deny(pending))
        identifier = form.get("identifier", "").strip().lower().removeprefix("@")
        try:
            did = await sign_in(request, identifier, form.get("password", ""))
        except SignInRefused as exc:
            GRANTS.labels("authorize", "bad_credentials").inc()
            return await show_sign_in(request, request_uri, str(exc), 401)(pending)
        GRANTS.labels("authorize", "allowed").inc()
        log_event(log, "oauth authorized", did=did, client=pending.client_id)
        return back_to_client(server.approve(pending, did))

    async def sign_in(request: web.Request, identifier: str, password: str) -> str:
        """The DID of the account that signed in with the account's own password (never an
        app password, as with the reference)."""
        ip = request.remote or "unknown"
        try:
            pds.login_limiter.check(identifier, ip)
        except XrpcError as exc:
            raise SignInRefused("Too many attempts; wait a few minutes and try again.") from exc
        account = pds.accounts.lookup(identifier) if identifier else None
        if account is None or not await asyncio.to_thread(
            verify_password, password, account.password_hash
        ):
            pds.login_limiter.failed(ip)
            raise SignInRefused("Invalid identifier or password")
        if account.takedown_ref is not None:
            raise SignInRefused("This account has been taken down")
        if account.deactivated_at is not None:
            raise SignInRefused("This account has been deactivated")
        return account.did

    async def resource_metadata(request: web.Request) -> web.Response:
        return json_response(protected_resource_metadata(issuer))

    async def server_metadata(request: web.Request) -> web.Response:
        return json_response(authorization_server_metadata(issuer))

    async def jwks(request: web.Request) -> web.Response:
        return json_response(server.tokens.jwks())

    app.router.add_get("/.well-known/oauth-protected-resource", resource_metadata)
    app.router.add_get("/.well-known/oauth-authorization-server", server_metadata)
    app.router.add_get("/oauth/jwks", jwks)
    app.router.add_post("/oauth/par", endpoint("par", par))
    app.router.add_post("/oauth/token", endpoint("token", token))
    app.router.add_post("/oauth/revoke", endpoint("revoke", revoke))
    app.router.add_get("/oauth/authorize", authorize_page)
    app.router.add_post("/oauth/authorize", authorize_decision)
