"""The viewer's service token: what is accepted, what is refused, and a rotated key."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from strata.core.crypto import K256Keypair
from strata.core.diddoc import DidDocument
from strata.core.jwt import sign_service_jwt
from strata.identity import IdentityNotFound, Resolved
from strata.net.errors import XrpcError
from strata.net.service_auth import ServiceAuth

FEEDGEN = "did:web:feeds.example.com"
VIEWER = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"
SKELETON = "app.bsky.feed.getFeedSkeleton"


def document(key: K256Keypair) -> DidDocument:
    method = {
        "id": f"{VIEWER}#atproto",
        "type": "Multikey",
        "controller": VIEWER,
        "publicKeyMultibase": key.did().removeprefix("did:key:"),
    }
    return DidDocument(VIEWER, {"id": VIEWER, "verificationMethod": [method]})


class Directory:
    """A resolver stand-in: serves `documents` in turn, each from a cache `age` seconds old."""

    def __init__(self, *documents: DidDocument, age: float = 0.0) -> None:
        self.documents = list(documents)
        self.age = age
        self.forgotten: list[str] = []

    async def resolve_did(self, did: str) -> Resolved[DidDocument]:
        if did != VIEWER:
            raise IdentityNotFound(did)
        return Resolved(self.documents[0], self.age, False)

    def forget(self, did: str) -> None:
        self.forgotten.append(did)
        self.documents.pop(0)
        self.age = 0.0


async def verify(directory: Directory, authorization: str | None) -> Any:
    auth = ServiceAuth(directory, FEEDGEN, "feedgen")  # type: ignore[arg-type]
    headers = {"Authorization": authorization} if authorization else {}
    request = make_mocked_request("GET", f"/xrpc/{SKELETON}", headers=headers)
    try:
        return await auth.viewer(request, SKELETON)
    except XrpcError as exc:
        return exc.status, exc.error


def bearer(key: K256Keypair, **overrides: Any) -> str:
    claims: dict[str, Any] = {"iss": VIEWER, "aud": FEEDGEN, "lxm": SKELETON, "now": time.time()}
    claims.update(overrides)
    return "Bearer " + sign_service_jwt(
        key, claims["iss"], claims["aud"], claims["lxm"], claims["now"]
    )


async def test_tokens_name_the_viewer_or_are_refused() -> None:
    key = K256Keypair.generate()
    directory = Directory(document(key))
    assert await verify(directory, None) is None
    assert await verify(directory, bearer(key)) == VIEWER
    assert await verify(directory, bearer(key, lxm=None)) == VIEWER
    assert await verify(directory, "bearer  " + bearer(key)[7:] + " ") == VIEWER
    for authorization, error in (
        (bearer(key, lxm="app.bsky.feed.getTimeline"), "BadJwtLexiconMethod"),
        (bearer(key, aud="did:web:other.example.com"), "BadJwtAudience"),
        (bearer(key, now=time.time() - 3600), "JwtExpired"),
        (bearer(key, iss="did:plc:cccccccccccccccccccccccc"), "BadJwtIss"),
        (bearer(key, iss="not-a-did"), "BadJwtIss"),
        (bearer(K256Keypair.generate()), "BadJwtSignature"),
        ("Bearer a.b", "BadJwt"),
        ("Bearer", "AuthenticationRequired"),
        ("Basic dXNlcjpwdw==", "AuthenticationRequired"),
    ):
        assert await verify(directory, authorization) == (401, error), error
    assert directory.forgotten == []


@pytest.mark.parametrize("age", [0.0, 3600.0])
async def test_a_rotated_key_is_looked_up_again_unless_just_fetched(age: float) -> None:
    old, new = K256Keypair.generate(), K256Keypair.generate()
    directory = Directory(document(old), document(new), age=age)
    answer = await verify(directory, bearer(new))
    if age:
        assert answer == VIEWER and directory.forgotten == [VIEWER]
    else:
        assert answer == (401, "BadJwtSignature") and directory.forgotten == []
