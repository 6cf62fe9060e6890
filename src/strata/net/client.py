"""A small async XRPC client for Strata's own tools: the node's set-up (accounts, feeds, the
demo network) and moving accounts between PDSes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp


class XrpcFailed(Exception):
    """A call answered with an error status; `error` is the XRPC error name."""

    def __init__(self, nsid: str, status: int, error: str, message: str) -> None:
        super().__init__(f"{nsid} failed with {status} {error}: {message}")
        self.status = status
        self.error = error


@dataclass(frozen=True)
class Session:
    did: str
    handle: str
    access_jwt: str


class XrpcClient:
    """Calls one service's XRPC methods, with an optional signed-in session."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.session: Session | None = None

    def _headers(
        self, content_type: str | None = None, bearer: str | None = None
    ) -> dict[str, str]:
        headers = {"Content-Type": content_type} if content_type else {}
        token = bearer or (self.session.access_jwt if self.session is not None else None)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _answer(self, nsid: str, response: aiohttp.ClientResponse) -> Any:
        text = await response.text()
        try:
            body = json.loads(text) if text else {}
        except json.JSONDecodeError:
            body = {"message": text}
        if response.status != 200:
            raise XrpcFailed(
                nsid,
                response.status,
                str(body.get("error", "")),
                str(body.get("message", "")),
            )
        return body

    async def query(self, nsid: str, **params: Any) -> Any:
        """A GET method (`params` become the query string)."""
        async with self.http.get(
            f"{self.base}/xrpc/{nsid}", params=params, headers=self._headers()
        ) as response:
            return await self._answer(nsid, response)

    async def query_bytes(self, nsid: str, **params: Any) -> tuple[bytes, str]:
        """A GET method whose answer is not JSON (a CAR file, a blob): its bytes and their
        media type."""
        async with self.http.get(
            f"{self.base}/xrpc/{nsid}", params=params, headers=self._headers()
        ) as response:
            if response.status != 200:
                await self._answer(nsid, response)
            return await response.read(), response.content_type

    async def procedure(
        self,
        nsid: str,
        body: Any = None,
        data: bytes | None = None,
        content_type: str = "",
        bearer: str | None = None,
    ) -> Any:
        """A POST method with a JSON `body`, raw `data` of `content_type` (a blob), or no input
        at all (methods without input refuse a body). `bearer` replaces the session's token
        (a service-auth token, say)."""
        payload: bytes | None = data
        kind: str | None = content_type
        if data is None:
            payload = None if body is None else json.dumps(body).encode()
            kind = None if body is None else "application/json"
        async with self.http.post(
            f"{self.base}/xrpc/{nsid}", data=payload, headers=self._headers(kind, bearer)
        ) as response:
            return await self._answer(nsid, response)

    async def login(self, identifier: str, password: str) -> Session:
        """Sign in; later calls carry the session's access token."""
        answer = await self.procedure(
            "com.atproto.server.createSession",
            {"identifier": identifier, "password": password},
        )
        self.session = Session(answer["did"], answer["handle"], answer["accessJwt"])
        return self.session

    async def create_account(self, handle: str, password: str) -> Session:
        """Create an account with a new did:plc and sign in as it."""
        answer = await self.procedure(
            "com.atproto.server.createAccount",
            {"handle": handle, "password": password, "email": f"{handle}@invalid"},
        )
        self.session = Session(answer["did"], answer["handle"], answer["accessJwt"])
        return self.session

    async def create_record(self, collection: str, record: dict[str, Any]) -> dict[str, str]:
        """Write a record into the signed-in account's repository; returns its uri and cid."""
        assert self.session is not None, "sign in first"
        answer = await self.procedure(
            "com.atproto.repo.createRecord",
            {"repo": self.session.did, "collection": collection, "record": record},
        )
        return {"uri": answer["uri"], "cid": answer["cid"]}

    async def put_record(self, collection: str, rkey: str, record: dict[str, Any]) -> str:
        """Write (or overwrite) the record at `rkey`; returns its at:// URI."""
        assert self.session is not None, "sign in first"
        answer = await self.procedure(
            "com.atproto.repo.putRecord",
            {"repo": self.session.did, "collection": collection, "rkey": rkey, "record": record},
        )
        return str(answer["uri"])
