"""OAuth on the PDS, end to end over HTTP: discovery, PAR, the sign-in page, PKCE, DPoP-bound
tokens used on XRPC methods with their scopes enforced, refresh rotation, revocation, and each
kind of bad input refused with the OAuth error the reference provider answers with."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey

from strata.pds.oauth.clients import Clients
from strata.pds.oauth.dpop import ReplayCache
from strata.pds.oauth.errors import OAuthError
from tests.pds.oauth_client import (
    LOOPBACK_REDIRECT,
    DpopSigner,
    Network,
    OAuthClient,
    loopback_client_id,
    network_with_account,
    send,
)
from tests.services import serving

PASSWORD = "alice-password"
POST = "app.bsky.feed.post"


def environment(tmp_path: Path) -> contextlib.AbstractAsyncContextManager[Network]:
    return network_with_account(tmp_path, "alice.test", "alice@example.com", PASSWORD)


def post_record(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2026-01-01T00:00:00.000Z"}


async def create_post(env: Network, client: OAuthClient, access: str, text: str) -> Any:
    body = {"repo": env.did, "collection": POST, "record": post_record(text)}
    return await client.call("POST", "com.atproto.repo.createRecord", access, body)


async def test_discovery_documents(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        async with env.http.get(f"{env.pds.url}/.well-known/oauth-protected-resource") as r:
            resource = await r.json()
        assert resource["resource"] == env.issuer
        assert resource["authorization_servers"] == [env.issuer]
        async with env.http.get(f"{env.pds.url}/.well-known/oauth-authorization-server") as r:
            server = await r.json()
        assert server["issuer"] == env.issuer
        assert server["require_pushed_authorization_requests"] is True
        assert server["code_challenge_methods_supported"] == ["S256"]
        assert "ES256" in server["dpop_signing_alg_values_supported"]
        assert server["client_id_metadata_document_supported"] is True
        assert {"atproto", "transition:generic", "transition:chat.bsky"} <= set(
            server["scopes_supported"]
        )
        async with env.http.get(server["jwks_uri"]) as r:
            keys = (await r.json())["keys"]
        assert keys and all("d" not in k for k in keys)


async def test_sign_in_post_refresh_and_revoke(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        client = env.client()
        back = await client.authorize("alice.test", PASSWORD)
        assert back["state"] == client.state and back["iss"] == env.issuer
        answer = await client.exchange(back["code"])
        assert answer.status == 200, answer
        token = answer.json
        assert token["token_type"] == "DPoP" and token["sub"] == env.did
        assert token["scope"] == "atproto transition:generic"
        assert answer.headers["Cache-Control"] == "no-store"
        access = token["access_token"]

        created = await create_post(env, client, access, "written with an OAuth token")
        assert created.status == 200, created
        assert "DPoP-Nonce" in created.headers
        session = await client.call("GET", "com.atproto.server.getSession", access)
        assert session.status == 200 and session.json["did"] == env.did
        # Without transition:email, getSession keeps the email to itself.
        assert "email" not in session.json

        # The code works once; its second use ends the authorization it gave.
        again = await client.exchange(back["code"])
        assert (again.status, again.json["error"]) == (400, "invalid_grant")
        gone = await create_post(env, client, access, "after the code was replayed")
        assert (gone.status, gone.json["error"]) == (401, "invalid_token")


async def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_session(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        client = env.client()
        first = await client.sign_in_fully("alice.test", PASSWORD)
        rotated = await client.refresh(first.refresh)
        assert rotated.status == 200, rotated
        assert rotated.json["refresh_token"] != first.refresh
        second = rotated.json["access_token"]
        # The access token of before the refresh no longer works; the new one does.
        old = await create_post(env, client, first.access, "old token")
        assert (old.status, old.json["error"]) == (401, "invalid_token")
        assert (await create_post(env, client, second, "new token")).status == 200
        replayed = await client.refresh(first.refresh)
        assert (replayed.status, replayed.json["error"]) == (400, "invalid_grant")
        assert replayed.json["error_description"] == "Refresh token replayed"
        after = await create_post(env, client, second, "after the replay")
        assert after.status == 401


async def test_revocation(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        client = env.client()
        session = await client.sign_in_fully("alice.test", PASSWORD)
        answer = await send(
            env.http, client.signer, "POST", f"{env.issuer}/oauth/revoke",
            form={"client_id": client.client_id, "token": session.refresh},
        )  # fmt: skip
        assert answer.status == 200, answer
        refused = await create_post(env, client, session.access, "revoked")
        assert refused.status == 401
        assert (await client.refresh(session.refresh)).json["error"] == "invalid_grant"


async def test_scopes_decide_what_a_token_reaches(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        generic = env.client()
        access = (await generic.sign_in_fully("alice.test", PASSWORD)).access
        for method, nsid, body, error in (
            ("POST", "com.atproto.server.createAppPassword", {"name": "x"}, "Forbidden"),
            ("GET", "com.atproto.server.listAppPasswords", None, "Forbidden"),
            ("POST", "com.atproto.identity.updateHandle", {"handle": "al.test"},
             "ScopeMissingError"),
            ("POST", "com.atproto.identity.requestPlcOperationSignature", None,
             "ScopeMissingError"),
            ("POST", "com.atproto.server.deactivateAccount", {}, "Forbidden"),
            ("GET", "chat.bsky.convo.listConvos", None, "ScopeMissingError"),
        ):  # fmt: skip
            answer = await generic.call(method, nsid, access, body)
            assert (answer.status, answer.json["error"]) == (403, error), (nsid, answer)

        only_identity = env.client(client_id=loopback_client_id("atproto"))
        access = (await only_identity.sign_in_fully("alice.test", PASSWORD, scope="atproto")).access
        refused = await create_post(env, only_identity, access, "no generic scope")
        assert (refused.status, refused.json["error"]) == (403, "ScopeMissingError")
        assert (
            await only_identity.call("GET", "com.atproto.server.getSession", access)
        ).status == 200

        with_email = env.client(
            client_id=loopback_client_id("atproto transition:generic transition:email")
        )
        access = (
            await with_email.sign_in_fully(
                "alice.test", PASSWORD, scope="atproto transition:generic transition:email"
            )
        ).access
        session = await with_email.call("GET", "com.atproto.server.getSession", access)
        assert session.json["email"] == "alice@example.com"


async def test_dpop_proofs_are_checked(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        client = env.client()
        access = (await client.sign_in_fully("alice.test", PASSWORD)).access
        url = f"{env.issuer}/xrpc/com.atproto.server.getSession"
        signer = client.signer

        async def with_proof(proof: str, token: str = access, method: str = "GET") -> Any:
            return await send(env.http, signer, method, url, access=token, proof=proof, retry=False)

        replayed = signer.proof("GET", url, access)
        assert (await with_proof(replayed)).status == 200
        answer = await with_proof(replayed)
        assert (answer.status, answer.json["error"]) == (401, "invalid_token")
        assert "replayed" in answer.json["message"]
        assert answer.headers["WWW-Authenticate"].startswith("DPoP ")
        wrong_url = signer.proof("GET", f"{env.issuer}/xrpc/com.atproto.repo.listRecords", access)
        assert "htu" in (await with_proof(wrong_url)).json["message"]
        wrong_method = signer.proof("POST", url, access)
        assert "htm" in (await with_proof(wrong_method)).json["message"]
        no_ath = signer.proof("GET", url, None)
        assert "ath" in (await with_proof(no_ath)).json["message"]
        stale = signer.proof("GET", url, access, iat=int(time.time()) - 3600)
        assert "iat" in (await with_proof(stale)).json["message"]
        no_nonce = signer.proof("GET", url, access, nonce=None)
        answer = await with_proof(no_nonce)
        assert (answer.status, answer.json["error"]) == (401, "use_dpop_nonce")
        assert 'error="use_dpop_nonce"' in answer.headers["WWW-Authenticate"]
        # A proof from another key than the token's.
        thief = DpopSigner(nonce=signer.nonce)
        answer = await with_proof(thief.proof("GET", url, access))
        assert (answer.status, answer.json["error"]) == (401, "invalid_token")
        # The token sent as a Bearer token, and a token signed by someone else.
        async with env.http.get(url, headers={"Authorization": f"Bearer {access}"}) as r:
            assert r.status == 400 and (await r.json())["error"] == "InvalidToken"
        foreign_key = ECKey.generate_key("P-256")
        claims = jwt.decode(access, env.pds.pds.secrets.oauth_key).claims
        forged = jwt.encode({"alg": "ES256", "typ": "at+jwt"}, claims, foreign_key)
        answer = await with_proof(signer.proof("GET", url, forged), forged)
        assert (answer.status, answer.json["error"]) == (401, "invalid_token")
        expired = jwt.encode(
            {"alg": "ES256", "typ": "at+jwt"},
            {**claims, "exp": int(time.time()) - 10},
            env.pds.pds.secrets.oauth_key,
        )
        answer = await with_proof(signer.proof("GET", url, expired), expired)
        assert (answer.status, answer.json["error"]) == (401, "invalid_token")
        assert "expired" in answer.json["message"]


async def test_bad_authorization_requests(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        client = env.client()
        for params, error in (
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"code_challenge": ""}, "invalid_request"),
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"scope": "transition:generic"}, "invalid_scope"),
            ({"redirect_uri": "http://127.0.0.1:9/elsewhere"}, "invalid_request"),
            ({"client_id": "http://localhost/path"}, "invalid_client_metadata"),
            ({"client_id": "https://127.0.0.1/client.json"}, "invalid_client_metadata"),
            ({"login_hint": "not a handle"}, "invalid_request"),
        ):
            answer = await client.push(**params)
            assert (answer.status, answer.json["error"]) == (400, error), (params, answer)
        # Without a DPoP proof (and no dpop_jkt), there is nothing to bind the tokens to.
        form = {"client_id": client.client_id, "response_type": "code",
                "redirect_uri": LOOPBACK_REDIRECT, "code_challenge": "x" * 43,
                "code_challenge_method": "S256", "scope": "atproto"}  # fmt: skip
        async with env.http.post(f"{env.issuer}/oauth/par", data=form) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_dpop_proof"

        pushed = await client.push()
        status, page = await client.sign_in(pushed.json["request_uri"], "alice.test", "wrong")
        assert status == 401 and "Invalid identifier or password" in page
        # Denied: the client is sent back with access_denied.
        pushed = await client.push()
        status, location = await client.sign_in(
            pushed.json["request_uri"], "alice.test", PASSWORD, decision="deny"
        )
        assert status == 303 and "error=access_denied" in location
        # A request is approved once.
        pushed = await client.push()
        status, _ = await client.sign_in(pushed.json["request_uri"], "alice.test", PASSWORD)
        assert status == 303
        async with env.http.get(
            f"{env.issuer}/oauth/authorize",
            params={"client_id": client.client_id, "request_uri": pushed.json["request_uri"]},
        ) as r:
            assert r.status == 400
        # A sign-in form posted without its CSRF cookie does nothing.
        pushed = await client.push()
        async with aiohttp.ClientSession() as stranger, stranger.post(
            f"{env.issuer}/oauth/authorize",
            data={"request_uri": pushed.json["request_uri"], "client_id": client.client_id,
                  "csrf": "guess", "identifier": "alice.test", "password": PASSWORD,
                  "decision": "allow"},
            allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 400


async def test_bad_token_requests(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        client = env.client()
        back = await client.authorize("alice.test", PASSWORD)
        wrong = await client.exchange(back["code"], code_verifier="y" * 64)
        assert (wrong.status, wrong.json["error"]) == (400, "invalid_grant")
        assert wrong.json["error_description"] == "Invalid code_verifier"
        # The code was spent by the failed attempt.
        assert (await client.exchange(back["code"])).json["error"] == "invalid_grant"

        back = await client.authorize("alice.test", PASSWORD)
        other_key = OAuthClient(env.http, env.issuer)
        other_key.verifier = client.verifier
        stolen = await other_key.exchange(back["code"])
        assert (stolen.status, stolen.json["error"]) == (400, "invalid_grant")

        back = await client.authorize("alice.test", PASSWORD)
        moved = await client.exchange(back["code"], redirect_uri="http://127.0.0.1:9/other")
        assert moved.json["error"] == "invalid_grant"
        unknown = await client.exchange("cod-" + "0" * 64)
        assert unknown.json["error"] == "invalid_grant"
        grant = await send(
            env.http, client.signer, "POST", f"{env.issuer}/oauth/token",
            form={"client_id": client.client_id, "grant_type": "password"},
        )  # fmt: skip
        assert grant.json["error"] == "invalid_grant"


async def test_client_metadata_at_a_private_address_is_refused_in_production() -> None:
    clients = Clients("https://pds.example", dev=False, replay=ReplayCache())
    await clients.start()
    try:
        for client_id in (
            "https://127.0.0.1/client-metadata.json",
            "https://localhost/client-metadata.json",
            "https://[::1]/client-metadata.json",
            "https://10.1.2.3/client-metadata.json",
            "http://client.example/client-metadata.json",
        ):
            with pytest.raises(OAuthError) as refused:
                await clients.get(client_id)
            assert refused.value.error == "invalid_client_metadata", client_id
    finally:
        await clients.close()


async def test_a_confidential_client_with_its_metadata_document(tmp_path: Path) -> None:
    """A web client (dev mode allows its http:// address on loopback) authenticating with a
    client assertion signed by the key in its metadata."""
    client_key = ECKey.generate_key("P-256")
    app = web.Application()
    served: dict[str, Any] = {}

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(served)

    app.router.add_get("/client-metadata.json", metadata)
    async with environment(tmp_path) as env, serving(app) as base:
        client_id = f"{base}/client-metadata.json"
        redirect = f"{base}/callback"
        public = {**client_key.as_dict(private=False), "kid": "one", "alg": "ES256"}
        served.update(
            {
                "client_id": client_id,
                "client_name": "Example web app",
                "redirect_uris": [redirect],
                "scope": "atproto transition:generic",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "application_type": "web",
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "ES256",
                "dpop_bound_access_tokens": True,
                "jwks": {"keys": [public]},
            }
        )

        def assertion(**overrides: Any) -> dict[str, str]:
            now = int(time.time())
            claims = {
                "iss": client_id, "sub": client_id, "aud": env.issuer, "jti": f"{time.time_ns()}",
                "iat": now, "exp": now + 60, **overrides,
            }  # fmt: skip
            token = jwt.encode({"alg": "ES256", "kid": "one"}, claims, client_key)
            return {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": token,
            }

        client = OAuthClient(env.http, env.issuer, client_id=client_id, redirect_uri=redirect)
        client.extra = assertion()
        without = OAuthClient(env.http, env.issuer, client_id=client_id, redirect_uri=redirect)
        refused = await without.push()
        assert (refused.status, refused.json["error"]) == (400, "invalid_client"), refused
        client.extra_token_params = assertion  # type: ignore[method-assign]
        session = await client.sign_in_fully("alice.test", PASSWORD)
        assert (await create_post(env, client, session.access, "from a web app")).status == 200
        client.extra_token_params = lambda: assertion(aud="https://elsewhere.example")  # type: ignore[method-assign]
        assert (await client.refresh(session.refresh)).json["error"] == "invalid_client"
