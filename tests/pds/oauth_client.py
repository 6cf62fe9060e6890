"""A small OAuth client for the tests, written from the specs (RFC 9126 PAR, RFC 7636 PKCE,
RFC 9449 DPoP): it pushes a request, signs in on the PDS's page as a browser would, exchanges
the code, and signs every call with its DPoP key, retrying once with the nonce it is given."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.services import RunningPds, running_pds, running_plc

LOOPBACK_REDIRECT = "http://127.0.0.1:9/callback"


def loopback_client_id(scope: str = "atproto transition:generic") -> str:
    return "http://localhost?" + urlencode({"redirect_uri": LOOPBACK_REDIRECT, "scope": scope})


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


@dataclass
class Answer:
    status: int
    json: Any
    headers: dict[str, str]


@dataclass
class DpopSigner:
    """A DPoP key and the last nonce the server gave."""

    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    nonce: str | None = None

    def proof(self, method: str, url: str, access: str | None = None, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(12),
            "htm": method,
            "htu": url.split("?", 1)[0],
            "iat": int(time.time()),
        }
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        if access is not None:
            digest = hashlib.sha256(access.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key)


async def send(
    http: aiohttp.ClientSession,
    signer: DpopSigner,
    method: str,
    url: str,
    *,
    form: dict[str, str] | None = None,
    body: Any = None,
    access: str | None = None,
    proof: str | None = None,
    retry: bool = True,
) -> Answer:
    """One request signed with a fresh proof (or `proof`); a `use_dpop_nonce` answer is
    retried once with the nonce it carried."""
    headers = {"DPoP": proof or signer.proof(method, url, access)}
    if access is not None:
        headers["Authorization"] = f"DPoP {access}"
    async with http.request(
        method, url, data=form, json=body, headers=headers, allow_redirects=False
    ) as response:
        answer = Answer(
            response.status, await response.json(content_type=None), dict(response.headers)
        )
    if "DPoP-Nonce" in answer.headers:
        signer.nonce = answer.headers["DPoP-Nonce"]
    error = answer.json.get("error") if isinstance(answer.json, dict) else None
    if retry and proof is None and error == "use_dpop_nonce":
        return await send(
            http, signer, method, url, form=form, body=body, access=access, retry=False
        )
    return answer


@dataclass
class Session:
    access: str
    refresh: str
    sub: str
    scope: str


async def submit_sign_in(
    http: aiohttp.ClientSession, page_url: str, identifier: str, password: str, decision: str
) -> tuple[int, str]:
    """Open the PDS's sign-in page at `page_url` and submit its form: the answer's status and
    its Location (or its page)."""
    async with http.get(page_url) as response:
        html = await response.text()
        assert response.status == 200, html
    fields = dict(re.findall(r'<input type=hidden name=(\w+) value="([^"]*)"', html))
    form = {
        **{k: unescape(v) for k, v in fields.items()},
        "identifier": identifier,
        "password": password,
        "decision": decision,
    }
    action = page_url.split("?", 1)[0]
    async with http.post(action, data=form, allow_redirects=False) as response:
        return response.status, response.headers.get("Location") or await response.text()


async def sign_in_on_page(
    http: aiohttp.ClientSession, page_url: str, identifier: str, password: str
) -> str:
    """Sign in and allow: where the browser is sent back to."""
    status, location = await submit_sign_in(http, page_url, identifier, password, "allow")
    assert status == 303, location
    return location


class OAuthClient:
    """One client (public, loopback by default) talking to one PDS."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        issuer: str,
        client_id: str | None = None,
        redirect_uri: str = LOOPBACK_REDIRECT,
    ) -> None:
        self.http = http
        self.issuer = issuer
        self.client_id = client_id or loopback_client_id()
        self.redirect_uri = redirect_uri
        self.signer = DpopSigner()
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(8)
        self.extra: dict[str, str] = {}

    async def push(self, **params: str) -> Answer:
        form = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            "state": self.state,
            "scope": "atproto transition:generic",
            **self.extra,
            **params,
        }
        return await send(self.http, self.signer, "POST", f"{self.issuer}/oauth/par", form=form)

    async def sign_in(
        self, request_uri: str, identifier: str, password: str, decision: str = "allow"
    ) -> tuple[int, str]:
        """Open the sign-in page and submit it, as a browser does: the answer's status and
        its Location (or page text)."""
        query = urlencode({"client_id": self.client_id, "request_uri": request_uri})
        return await submit_sign_in(
            self.http, f"{self.issuer}/oauth/authorize?{query}", identifier, password, decision
        )

    async def authorize(self, identifier: str, password: str, **params: str) -> dict[str, str]:
        """PAR, sign-in and consent: the values the client was sent back with."""
        pushed = await self.push(**params)
        assert pushed.status == 201, pushed
        status, location = await self.sign_in(pushed.json["request_uri"], identifier, password)
        assert status == 303, location
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == self.redirect_uri
        return {k: v[0] for k, v in parse_qs(parts.query).items()}

    async def exchange(self, code: str, **overrides: str) -> Answer:
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            **self.extra_token_params(),
            **overrides,
        }
        return await send(self.http, self.signer, "POST", f"{self.issuer}/oauth/token", form=form)

    def extra_token_params(self) -> dict[str, str]:
        """Client authentication for confidential clients (none for public ones)."""
        return {}

    async def refresh(self, refresh_token: str) -> Answer:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": refresh_token,
            **self.extra_token_params(),
        }
        return await send(self.http, self.signer, "POST", f"{self.issuer}/oauth/token", form=form)

    async def sign_in_fully(self, identifier: str, password: str, **params: str) -> Session:
        back = await self.authorize(identifier, password, **params)
        answer = await self.exchange(back["code"])
        assert answer.status == 200, answer
        return Session(
            answer.json["access_token"],
            answer.json["refresh_token"],
            answer.json["sub"],
            answer.json["scope"],
        )

    async def call(
        self, method: str, nsid: str, access: str, body: Any = None, **params: str
    ) -> Answer:
        url = f"{self.issuer}/xrpc/{nsid}"
        if params:
            url = f"{url}?{urlencode(params)}"
        return await send(self.http, self.signer, method, url, body=body, access=access)


@dataclass
class Network:
    """A directory and a PDS with one account, and a browser-like session (cookies kept)."""

    plc_url: str
    pds: RunningPds
    http: aiohttp.ClientSession
    did: str

    @property
    def issuer(self) -> str:
        return self.pds.pds.config.public_url

    def client(self, **kwargs: Any) -> OAuthClient:
        return OAuthClient(self.http, self.issuer, **kwargs)


@contextlib.asynccontextmanager
async def network_with_account(
    tmp_path: Path, handle: str, email: str, password: str
) -> AsyncIterator[Network]:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=20)
        ) as http,
    ):
        async with http.post(
            f"{pds.url}/xrpc/com.atproto.server.createAccount",
            json={"handle": handle, "email": email, "password": password},
        ) as response:
            assert response.status == 200, await response.text()
            did = (await response.json())["did"]
        yield Network(plc.url, pds, http, did)
