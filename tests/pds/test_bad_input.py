"""Bad input to the PDS: every refusal is an XRPC error envelope, and nothing is written.

Each case sends something wrong (a malformed body, a record its lexicon refuses, a stale swap,
a forged token, ...) and checks two things: the answer is `{"error": name, "message": text}`
with the error name and HTTP status the reference PDS (bluesky-social/atproto, packages/pds and
packages/xrpc-server) answers with, and the account's repository, the firehose sequence and the
account list are exactly as they were before the request.

Where the reference answers with an accident of its HTTP framework rather than an XRPC name
(a JSON body over the size limit is `PayloadTooLargeError`, named after the Node.js exception),
or contradicts the error its own lexicon declares, the comment at the case says so and the
test names what it accepts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.cid import CID
from strata.core.jwt import encode_hs256
from strata.pds.auth import ACCESS, REFRESH, LoginLimiter
from strata.pds.service import Pds
from tests.services import running_pds, running_plc

T = TypeVar("T")

PASSWORD = "correct horse battery"
POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile"
UNKNOWN = "com.example.strata.thing"
NOW = "2024-05-01T12:00:00.000Z"

_NO_BODY = object()


# The client side


@dataclass
class Reply:
    status: int
    raw: bytes
    json: Any
    headers: dict[str, str]

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.raw[:300]!r})"


@dataclass
class User:
    did: str
    handle: str
    email: str
    access: str
    refresh: str


@dataclass
class Env:
    """A PLC directory and a PDS with one account (alice), and a client session."""

    url: str
    pds: Pds
    http: aiohttp.ClientSession
    alice: User = field(init=False)

    async def xrpc(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = _NO_BODY,
        data: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        skip_auto_headers: tuple[str, ...] = (),
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if body is not _NO_BODY:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.http.request(
            method,
            f"{self.url}/xrpc/{nsid}",
            params=params,
            data=data,
            headers=sent,
            skip_auto_headers=skip_auto_headers,
        ) as response:
            raw = await response.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return Reply(response.status, raw, parsed, dict(response.headers))

    async def get(self, nsid: str, params: dict[str, Any] | None = None, **kw: Any) -> Reply:
        return await self.xrpc("GET", nsid, params=params, **kw)

    async def post(self, nsid: str, body: Any = _NO_BODY, **kw: Any) -> Reply:
        return await self.xrpc("POST", nsid, body=body, **kw)

    async def create_user(self, name: str) -> User:
        handle, email = f"{name}.test", f"{name}@example.com"
        reply = await self.post(
            "com.atproto.server.createAccount",
            {"handle": handle, "email": email, "password": PASSWORD},
        )
        assert reply.status == 200, reply
        return User(
            reply.json["did"], handle, email, reply.json["accessJwt"], reply.json["refreshJwt"]
        )

    async def create(self, record: dict[str, Any], collection: str = UNKNOWN, **extra: Any) -> Any:
        """A record alice writes that must succeed (setting up a case)."""
        reply = await self.post(
            "com.atproto.repo.createRecord",
            {"repo": self.alice.did, "collection": collection, "record": record, **extra},
            token=self.alice.access,
        )
        assert reply.status == 200, reply
        return reply.json

    async def state(self, user: User | None = None) -> dict[str, Any]:
        """Everything a refused request must leave alone, as clients and the firehose see it."""
        user = user or self.alice
        latest = await self.get("com.atproto.sync.getLatestCommit", {"did": user.did})
        assert latest.status == 200, latest
        described = await self.get("com.atproto.repo.describeRepo", {"repo": user.did})
        assert described.status == 200, described
        records: dict[str, list[tuple[str, str, Any]]] = {}
        for collection in sorted({*described.json["collections"], POST, PROFILE, UNKNOWN}):
            found: list[tuple[str, str, Any]] = []
            cursor: str | None = None
            while True:
                params = {"repo": user.did, "collection": collection, "limit": "100"}
                if cursor:
                    params["cursor"] = cursor
                page = await self.get("com.atproto.repo.listRecords", params)
                assert page.status == 200, page
                found += [(r["uri"], r["cid"], r["value"]) for r in page.json["records"]]
                cursor = page.json.get("cursor")
                if not cursor:
                    break
            records[collection] = found
        return {
            "commit": latest.json,
            "collections": described.json["collections"],
            "records": records,
            "seq": self.pds.sequencer.last_seq,
            "accounts": self.pds.accounts.count(),
        }


@contextlib.asynccontextmanager
async def pds_env(tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url, **overrides) as running,
        aiohttp.ClientSession() as http,
    ):
        env = Env(running.url, running.pds, http)
        env.alice = await env.create_user("alice")
        yield env


def assert_error(reply: Reply, status: int, *names: str) -> None:
    """`reply` is the XRPC error envelope with `status` and one of `names`."""
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/json"), reply
    assert isinstance(reply.json, dict), reply
    assert reply.json.get("error") in names, reply
    assert isinstance(reply.json.get("message"), str), reply
    assert reply.json["message"], reply


async def refused(
    env: Env, request: Awaitable[Reply], status: int, *names: str, user: User | None = None
) -> Reply:
    """Send `request` (not yet awaited), which must be refused, and check it changed nothing."""
    before = await env.state(user)
    reply = await request
    assert_error(reply, status, *names)
    assert await env.state(user) == before, f"{reply} changed the repository"
    return reply


async def refused_signup(env: Env, handle: str, email: str, error: str) -> Reply:
    """createAccount with this handle and email must be refused with 400 `error`."""
    body = {"handle": handle, "email": email, "password": PASSWORD}
    return await refused(env, env.post("com.atproto.server.createAccount", body), 400, error)


def post_record(text: Any = "hello", **fields: Any) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": NOW, **fields}


def some_cid(seed: bytes) -> str:
    return str(CID.raw_from_digest(hashlib.sha256(seed).digest()))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# Malformed requests


async def test_malformed_json_body(tmp_path: Path) -> None:
    # The reference's body parser throws a JavaScript SyntaxError, which its error middleware
    # passes on by name ({"error": "SyntaxError"}); the XRPC name for a bad request is
    # InvalidRequest, and the status (400) is the same.
    async with pds_env(tmp_path) as env:
        for raw in (b"{", b'{"repo": ', b"not json", b"\xff\xfe\x00", b"{'repo': 1}", b"[1,]"):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.createRecord",
                    data=raw,
                    headers={"Content-Type": "application/json"},
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
        # An empty body parses as nothing at all: the required fields are missing.
        await refused(
            env,
            env.post(
                "com.atproto.repo.createRecord",
                data=b"",
                headers={"Content-Type": "application/json"},
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )


async def test_wrong_content_type(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        good = {"repo": env.alice.did, "collection": UNKNOWN, "record": {"n": 1}}
        for content_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/cbor",
            "multipart/form-data; boundary=x",
        ):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.createRecord",
                    data=json.dumps(good).encode(),
                    headers={"Content-Type": content_type},
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
        # No Content-Type at all.
        await refused(
            env,
            env.post(
                "com.atproto.repo.createRecord",
                data=json.dumps(good).encode(),
                token=env.alice.access,
                skip_auto_headers=("Content-Type",),
            ),
            400,
            "InvalidRequest",
        )
        # The same body with a proper JSON type (and a charset) is accepted.
        reply = await env.post(
            "com.atproto.repo.createRecord",
            data=json.dumps(good).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            token=env.alice.access,
        )
        assert reply.status == 200, reply


async def test_json_with_wrong_types(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        good = {"repo": did, "collection": UNKNOWN, "record": {"n": 1}}
        bodies: list[Any] = [
            {**good, "collection": 42},
            {**good, "collection": None},
            {**good, "collection": ["com.example.a.b"]},
            {**good, "record": "a string"},
            {**good, "record": 42},
            {**good, "record": [1, 2]},
            {**good, "record": None},
            {**good, "repo": 7},
            {**good, "rkey": 12345},
            {**good, "validate": "yes"},
            {**good, "swapCommit": 5},
            {**good, "swapCommit": "not-a-cid"},
            {**good, "record": {"n": 1.5}},
            {**good, "record": {"n": 2**70}},
            {**good, "record": {"n": {"$link": "not-a-cid"}}},
            {**good, "record": {"n": {"$bytes": "***"}}},
            {**good, "record": {"$type": 5}},
            [good],
            "just a string",
            42,
            None,
        ]
        for body in bodies:
            await refused(
                env,
                env.post("com.atproto.repo.createRecord", body, token=env.alice.access),
                400,
                "InvalidRequest",
            )
        writes_bodies: list[Any] = [
            {"repo": did, "writes": "nope"},
            {"repo": did, "writes": {"$type": "com.atproto.repo.applyWrites#create"}},
            {"repo": did, "writes": [42]},
            {"repo": did, "writes": [{"$type": "com.atproto.repo.applyWrites#explode"}]},
            {
                "repo": did,
                "writes": [
                    {
                        "$type": "com.atproto.repo.applyWrites#create",
                        "collection": UNKNOWN,
                        "value": "not an object",
                    }
                ],
            },
        ]
        for body in writes_bodies:
            await refused(
                env,
                env.post("com.atproto.repo.applyWrites", body, token=env.alice.access),
                400,
                "InvalidRequest",
            )


async def test_lone_surrogates_in_json(tmp_path: Path) -> None:
    # JSON can spell a lone UTF-16 surrogate ("\ud800"), which is no Unicode scalar value: it
    # cannot be stored as text, hashed as a password or encoded as DAG-CBOR. It is the
    # client's mistake, whichever method it is sent to: 400, never a 500.
    async with pds_env(tmp_path) as env:
        for record in (
            {"text": "\ud800"},
            {"\udfff": "key"},
            {"ok": 1, "\udfff": "key"},
            {"nested": ["ok", "a\ud83d"]},
        ):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.createRecord",
                    {"repo": env.alice.did, "collection": UNKNOWN, "record": record},
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
        for nsid, body in (
            ("com.atproto.server.createSession", {"identifier": "\ud800", "password": "x"}),
            (
                "com.atproto.server.createSession",
                {"identifier": "alice.test", "password": "\ud800"},
            ),
            (
                "com.atproto.server.createAccount",
                {"handle": "zed.test", "email": "\ud800@example.com", "password": PASSWORD},
            ),
            (
                "com.atproto.server.createAccount",
                {"handle": "zed.test", "email": "zed@example.com", "password": "pw\udfff"},
            ),
        ):
            await refused(env, env.post(nsid, body), 400, "InvalidRequest")
        assert env.pds.accounts.by_handle("zed.test") is None


async def test_bytes_that_are_not_base64(tmp_path: Path) -> None:
    # {"$bytes": ...} must hold base64; a non-ASCII string there is as wrong as any other.
    async with pds_env(tmp_path) as env:
        for value in ("\u00e9t\u00e9", "\x80", "abc\u2603"):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.createRecord",
                    {
                        "repo": env.alice.did,
                        "collection": UNKNOWN,
                        "record": {"data": {"$bytes": value}},
                    },
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
            await refused(
                env,
                env.post(
                    "com.atproto.server.createSession",
                    {"identifier": {"$bytes": value}, "password": "x"},
                ),
                400,
                "InvalidRequest",
            )


async def test_missing_required_fields(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        cases: list[tuple[str, dict[str, Any]]] = [
            ("com.atproto.repo.createRecord", {"collection": UNKNOWN, "record": {}}),
            ("com.atproto.repo.createRecord", {"repo": did, "record": {}}),
            ("com.atproto.repo.createRecord", {"repo": did, "collection": UNKNOWN}),
            ("com.atproto.repo.createRecord", {}),
            ("com.atproto.repo.putRecord", {"repo": did, "collection": UNKNOWN, "record": {}}),
            ("com.atproto.repo.putRecord", {"repo": did, "collection": UNKNOWN, "rkey": "a"}),
            ("com.atproto.repo.deleteRecord", {"repo": did, "collection": UNKNOWN}),
            ("com.atproto.repo.deleteRecord", {"repo": did, "rkey": "a"}),
            ("com.atproto.repo.applyWrites", {"repo": did}),
            (
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "writes": [
                        {"$type": "com.atproto.repo.applyWrites#create", "collection": UNKNOWN}
                    ],
                },
            ),
            (
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#update",
                            "collection": UNKNOWN,
                            "value": {},
                        }
                    ],
                },
            ),
            (
                "com.atproto.repo.applyWrites",
                {"repo": did, "writes": [{"collection": UNKNOWN, "rkey": "a", "value": {}}]},
            ),
        ]
        for nsid, body in cases:
            await refused(
                env,
                env.post(nsid, body, token=env.alice.access),
                400,
                "InvalidRequest",
            )
        for params in ({"repo": did, "collection": POST}, {"collection": POST, "rkey": "x"}):
            reply = await env.get("com.atproto.repo.getRecord", params)
            assert_error(reply, 400, "InvalidRequest")
        assert_error(await env.get("com.atproto.sync.getLatestCommit"), 400, "InvalidRequest")


async def test_unknown_method(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        before = await env.state()
        for token in (None, env.alice.access):
            reply = await env.get("com.example.strata.doesNotExist", {"a": "1"}, token=token)
            assert_error(reply, 501, "MethodNotImplemented")
            reply = await env.post("com.example.strata.doesNotExist", {"a": 1}, token=token)
            assert_error(reply, 501, "MethodNotImplemented")
        reply = await env.post("io.example.nothing.here")
        assert_error(reply, 501, "MethodNotImplemented")
        assert await env.state() == before


async def test_wrong_http_method(tmp_path: Path) -> None:
    # The reference's XRPC server answers 400 InvalidRequest "Incorrect HTTP method (GET)
    # expected POST" for a method it knows called with the other verb (xrpc-server catchall).
    async with pds_env(tmp_path) as env:
        await refused(
            env,
            env.get(
                "com.atproto.repo.createRecord",
                {"repo": env.alice.did, "collection": UNKNOWN},
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )
        await refused(
            env,
            env.get("com.atproto.server.createAccount", {"handle": "mallory.test"}),
            400,
            "InvalidRequest",
        )
        reply = await env.post(
            "com.atproto.repo.getRecord",
            {},
            headers={},
        )
        assert_error(reply, 400, "InvalidRequest")
        reply = await env.post("com.atproto.server.describeServer", {})
        assert_error(reply, 400, "InvalidRequest")


# Records


async def test_record_that_fails_its_lexicon(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        bad_posts = [
            post_record(text=42),
            post_record(text="a" * 301),  # over 300 graphemes
            post_record(text="\u00e9" * 1501),  # 3002 bytes, over the 3000-byte limit
            {"$type": POST, "text": "no date"},
            post_record(createdAt="yesterday"),
            post_record(langs="en"),
            post_record(reply={"root": "nope"}),
        ]
        for record in bad_posts:
            await refused(
                env,
                env.post(
                    "com.atproto.repo.createRecord",
                    {"repo": did, "collection": POST, "record": record},
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
        # putRecord and applyWrites validate the same way; a batch with one bad write commits
        # none of them.
        await refused(
            env,
            env.post(
                "com.atproto.repo.putRecord",
                {"repo": did, "collection": POST, "rkey": "3kabc", "record": post_record(text=1)},
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )
        await refused(
            env,
            env.post(
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#create",
                            "collection": POST,
                            "value": post_record(),
                        },
                        {
                            "$type": "com.atproto.repo.applyWrites#create",
                            "collection": POST,
                            "value": post_record(text=["x"]),
                        },
                    ],
                },
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )


async def test_type_that_does_not_match_the_collection(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        like = {"$type": "app.bsky.feed.like", "createdAt": NOW}
        cases: list[tuple[str, dict[str, Any]]] = [
            (
                "com.atproto.repo.createRecord",
                {"repo": did, "collection": POST, "record": {**post_record(), "$type": UNKNOWN}},
            ),
            (
                "com.atproto.repo.createRecord",
                {"repo": did, "collection": UNKNOWN, "record": like, "validate": False},
            ),
            (
                "com.atproto.repo.putRecord",
                {"repo": did, "collection": POST, "rkey": "3kabc", "record": like},
            ),
            (
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#create",
                            "collection": UNKNOWN,
                            "value": like,
                        }
                    ],
                },
            ),
        ]
        for nsid, body in cases:
            await refused(env, env.post(nsid, body, token=env.alice.access), 400, "InvalidRequest")


async def test_invalid_record_key(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        for rkey in ("bad key", ".", "..", "a/b", "x" * 513, "#hash", "emoji\U0001f600", "a?b"):
            for nsid in ("com.atproto.repo.createRecord", "com.atproto.repo.putRecord"):
                await refused(
                    env,
                    env.post(
                        nsid,
                        {"repo": did, "collection": UNKNOWN, "rkey": rkey, "record": {"n": 1}},
                        token=env.alice.access,
                    ),
                    400,
                    "InvalidRequest",
                )
        # A profile's key is the literal "self".
        await refused(
            env,
            env.post(
                "com.atproto.repo.putRecord",
                {
                    "repo": did,
                    "collection": PROFILE,
                    "rkey": "notself",
                    "record": {"$type": PROFILE, "displayName": "Alice"},
                },
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )
        await refused(
            env,
            env.post(
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#delete",
                            "collection": UNKNOWN,
                            "rkey": "..",
                        }
                    ],
                },
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )


async def test_invalid_collection_nsid(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        for collection in ("notansid", "com.example", "com.example.", "com..example.x", "a b.c.d"):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.createRecord",
                    {
                        "repo": did,
                        "collection": collection,
                        "record": {"n": 1},
                        "validate": False,
                    },
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
            await refused(
                env,
                env.post(
                    "com.atproto.repo.deleteRecord",
                    {"repo": did, "collection": collection, "rkey": "abc"},
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )
            reply = await env.get(
                "com.atproto.repo.listRecords", {"repo": did, "collection": collection}
            )
            assert_error(reply, 400, "InvalidRequest")


async def test_validate_true_on_unknown_collection(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        await refused(
            env,
            env.post(
                "com.atproto.repo.createRecord",
                {"repo": did, "collection": UNKNOWN, "record": {"n": 1}, "validate": True},
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )
        await refused(
            env,
            env.post(
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "validate": True,
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#create",
                            "collection": UNKNOWN,
                            "value": {"n": 1},
                        }
                    ],
                },
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )
        # Left unset, the record is stored unvalidated.
        created = await env.create({"n": 1})
        assert created["validationStatus"] == "unknown"


async def test_too_many_writes(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        writes = [
            {
                "$type": "com.atproto.repo.applyWrites#create",
                "collection": UNKNOWN,
                "rkey": f"r{i}",
                "value": {"n": i},
            }
            for i in range(201)
        ]
        await refused(
            env,
            env.post(
                "com.atproto.repo.applyWrites",
                {"repo": env.alice.did, "writes": writes},
                token=env.alice.access,
            ),
            400,
            "InvalidRequest",
        )


# Oversized bodies


async def test_record_body_over_the_json_limit(tmp_path: Path) -> None:
    # The reference accepts JSON bodies up to 1,000,000 bytes on createRecord, putRecord and
    # applyWrites and answers 413 past that. Its name for it comes from the Node.js body
    # parser's exception, "PayloadTooLargeError"; the XRPC name is "PayloadTooLarge".
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        big = {"blob": "x" * 1_100_000}
        for nsid, body in (
            ("com.atproto.repo.createRecord", {"repo": did, "collection": UNKNOWN, "record": big}),
            (
                "com.atproto.repo.putRecord",
                {"repo": did, "collection": UNKNOWN, "rkey": "big", "record": big},
            ),
            (
                "com.atproto.repo.applyWrites",
                {
                    "repo": did,
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#create",
                            "collection": UNKNOWN,
                            "value": big,
                        }
                    ],
                },
            ),
        ):
            await refused(
                env,
                env.post(nsid, body, token=env.alice.access),
                413,
                "PayloadTooLarge",
                "PayloadTooLargeError",
            )


async def test_json_body_over_the_general_limit(tmp_path: Path) -> None:
    # Every other JSON method of the reference takes at most 150 KiB.
    async with pds_env(tmp_path) as env:
        padding = "p" * (200 * 1024)
        await refused(
            env,
            env.post(
                "com.atproto.server.createAccount",
                {
                    "handle": "mallory.test",
                    "email": "mallory@example.com",
                    "password": PASSWORD,
                    "padding": padding,
                },
            ),
            413,
            "PayloadTooLarge",
            "PayloadTooLargeError",
        )
        assert env.pds.accounts.by_handle("mallory.test") is None


async def test_blob_over_the_limit(tmp_path: Path) -> None:
    async with pds_env(tmp_path, blob_upload_limit=1000) as env:
        did = env.alice.did

        async def list_blobs() -> list[str]:
            reply = await env.get("com.atproto.sync.listBlobs", {"did": did})
            assert reply.status == 200, reply
            return list(reply.json["cids"])

        async def chunked(total: int) -> AsyncIterator[bytes]:
            for _ in range(total // 100):
                yield b"z" * 100

        blobs_before = await list_blobs()
        # Declared too large up front.
        await refused(
            env,
            env.post(
                "com.atproto.repo.uploadBlob",
                data=b"y" * 1001,
                headers={"Content-Type": "text/plain"},
                token=env.alice.access,
            ),
            413,
            "PayloadTooLarge",
        )
        # Streamed without a length, found too large on the way.
        await refused(
            env,
            env.post(
                "com.atproto.repo.uploadBlob",
                data=chunked(5000),
                headers={"Content-Type": "text/plain"},
                token=env.alice.access,
            ),
            413,
            "PayloadTooLarge",
        )
        assert await list_blobs() == blobs_before
        assert [p for p in env.pds.blobs.tmp.rglob("*") if p.is_file()] == []
        assert list(env.pds.stores.open(did).missing_blobs(100, None)) == []
        # Exactly at the limit is fine.
        reply = await env.post(
            "com.atproto.repo.uploadBlob",
            data=b"y" * 1000,
            headers={"Content-Type": "text/plain"},
            token=env.alice.access,
        )
        assert reply.status == 200, reply
        assert reply.json["blob"]["size"] == 1000


# Parameters


async def test_bad_limit_params(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        for limit in ("0", "101", "-1", "abc", "1.5", "", "1e2"):
            reply = await env.get(
                "com.atproto.repo.listRecords",
                {"repo": did, "collection": UNKNOWN, "limit": limit},
            )
            assert_error(reply, 400, "InvalidRequest")
        for limit in ("0", "1001", "ten"):
            reply = await env.get("com.atproto.sync.listRepos", {"limit": limit})
            assert_error(reply, 400, "InvalidRequest")
        reply = await env.get(
            "com.atproto.repo.listRecords",
            {"repo": did, "collection": UNKNOWN, "reverse": "maybe"},
        )
        assert_error(reply, 400, "InvalidRequest")
        reply = await env.get("com.atproto.sync.getRepo", {"did": did, "since": "not-a-tid"})
        assert_error(reply, 400, "InvalidRequest")


def ws_url(env: Env, query: str) -> str:
    return env.url.replace("http://", "ws://") + f"/xrpc/com.atproto.sync.subscribeRepos{query}"


async def test_subscribe_repos_cursor_in_the_future(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        before = await env.state()
        future = env.pds.sequencer.last_seq + 1_000_000
        async with env.http.ws_connect(ws_url(env, f"?cursor={future}")) as ws:
            message = await asyncio.wait_for(ws.receive(), 10)
            assert message.type == aiohttp.WSMsgType.BINARY, message
            header = cbor.encode({"op": -1})
            assert message.data.startswith(header), message.data
            body = cbor.decode(message.data[len(header) :])
            assert isinstance(body, dict)
            assert body["error"] == "FutureCursor"
            assert isinstance(body.get("message"), str)
            closing = await asyncio.wait_for(ws.receive(), 10)
            assert closing.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ), closing
        assert await env.state() == before


async def test_subscribe_repos_non_integer_cursor(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        for cursor in ("abc", "1.5", "0x10"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
                async with env.http.ws_connect(ws_url(env, f"?cursor={cursor}")):
                    pass
            assert caught.value.status == 400
            reply = await env.get("com.atproto.sync.subscribeRepos", {"cursor": cursor})
            assert_error(reply, 400, "InvalidRequest")


# Authentication


def access_token(env: Env, did: str, *, secret: bytes | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "scope": ACCESS,
        "aud": env.pds.config.service_did,
        "sub": did,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return encode_hs256(payload, secret or env.pds.secrets.jwt_secret, "at+jwt")


def write_attempt(env: Env, headers: dict[str, str]) -> Awaitable[Reply]:
    return env.post(
        "com.atproto.repo.createRecord",
        {"repo": env.alice.did, "collection": UNKNOWN, "record": {"n": 1}},
        headers=headers,
    )


async def test_expired_access_token(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        now = int(time.time())
        expired = access_token(env, env.alice.did, iat=now - 7300, exp=now - 100)
        await refused(
            env,
            write_attempt(env, {"Authorization": f"Bearer {expired}"}),
            400,
            "ExpiredToken",
        )
        reply = await env.get("com.atproto.server.getSession", token=expired)
        assert_error(reply, 400, "ExpiredToken")


async def test_forged_token(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        forged = access_token(env, env.alice.did, secret=b"not the secret of this pds" * 2)
        await refused(
            env, write_attempt(env, {"Authorization": f"Bearer {forged}"}), 400, "InvalidToken"
        )
        # A well-signed token for another service, and one with its signature cut off.
        elsewhere = access_token(env, env.alice.did, aud="did:web:elsewhere.example")
        await refused(
            env, write_attempt(env, {"Authorization": f"Bearer {elsewhere}"}), 400, "InvalidToken"
        )
        unsigned = env.alice.access.rsplit(".", 1)[0] + "."
        await refused(
            env, write_attempt(env, {"Authorization": f"Bearer {unsigned}"}), 400, "InvalidToken"
        )


async def test_refresh_token_used_as_access_token(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        await refused(
            env,
            write_attempt(env, {"Authorization": f"Bearer {env.alice.refresh}"}),
            400,
            "InvalidToken",
        )
        # Re-typed as an access token, the refresh scope still does not open the repository.
        now = int(time.time())
        retyped = encode_hs256(
            {
                "scope": REFRESH,
                "aud": env.pds.config.service_did,
                "sub": env.alice.did,
                "jti": "x",
                "iat": now,
                "exp": now + 60,
            },
            env.pds.secrets.jwt_secret,
            "at+jwt",
        )
        await refused(
            env, write_attempt(env, {"Authorization": f"Bearer {retyped}"}), 400, "InvalidToken"
        )


async def test_access_token_used_to_refresh(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        for nsid in ("com.atproto.server.refreshSession", "com.atproto.server.deleteSession"):
            reply = await env.post(nsid, token=env.alice.access)
            assert_error(reply, 400, "InvalidToken")
        # The session is untouched: its refresh token still works.
        reply = await env.post("com.atproto.server.refreshSession", token=env.alice.refresh)
        assert reply.status == 200, reply


async def test_no_authorization_header(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        await refused(env, write_attempt(env, {}), 401, "AuthMissing")
        for nsid in ("com.atproto.server.getSession", "com.atproto.repo.listMissingBlobs"):
            assert_error(await env.get(nsid), 401, "AuthMissing")


async def test_malformed_bearer_token(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        for token in ("garbage", "a.b.c", "not.a.jwt.at.all", "e30.e30.", "Zm9v"):
            await refused(
                env, write_attempt(env, {"Authorization": f"Bearer {token}"}), 400, "InvalidToken"
            )


async def test_garbage_authorization_header(tmp_path: Path) -> None:
    # The reference (auth-verifier.ts, parseAuthorizationHeader and authorization()) answers
    # 400 InvalidToken for a header that is not "<type> <credentials>" ("Malformed
    # authorization header"), for an unknown type ("Unsupported authorization type"), and for
    # a known type the method does not take, such as Basic ("Unexpected authorization type").
    async with pds_env(tmp_path) as env:
        admin = basic("admin", env.pds.secrets.admin_password)
        for header in (
            "garbage",
            "Bearer",
            f"Bearer {env.alice.access} extra",
            f"Token {env.alice.access}",
            "Negotiate abc",
            admin,
        ):
            await refused(env, write_attempt(env, {"Authorization": header}), 400, "InvalidToken")


async def test_admin_method_with_wrong_password(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        password = env.pds.secrets.admin_password
        for header in (
            basic("admin", "wrong"),
            basic("admin", ""),
            basic("root", password),
            basic("admin", password + "x"),
            "Basic !!!not-base64!!!",
        ):
            await refused(
                env,
                env.post(
                    "com.atproto.admin.updateAccountPassword",
                    {"did": env.alice.did, "password": "new password"},
                    headers={"Authorization": header},
                ),
                401,
                "AuthenticationRequired",
            )
            reply = await env.get(
                "com.atproto.admin.getAccountInfo",
                {"did": env.alice.did},
                headers={"Authorization": header},
            )
            assert_error(reply, 401, "AuthenticationRequired")
        # The password did not change.
        login = await env.post(
            "com.atproto.server.createSession",
            {"identifier": env.alice.handle, "password": PASSWORD},
        )
        assert login.status == 200, login


async def test_admin_method_without_admin_credentials(tmp_path: Path) -> None:
    # The reference's admin-token verifier (auth-verifier.ts, adminToken) throws a bare
    # AuthRequiredError() whenever it finds no Basic credentials: no header, or an account's
    # own bearer token. That is 401 "AuthenticationRequired"; it has no "AuthMissing" case.
    async with pds_env(tmp_path) as env:
        for token in (None, env.alice.access):
            await refused(
                env,
                env.post("com.atproto.admin.deleteAccount", {"did": env.alice.did}, token=token),
                401,
                "AuthenticationRequired",
            )
            await refused(
                env,
                env.post(
                    "com.atproto.admin.updateAccountPassword",
                    {"did": env.alice.did, "password": "new password"},
                    token=token,
                ),
                401,
                "AuthenticationRequired",
            )
        login = await env.post(
            "com.atproto.server.createSession",
            {"identifier": env.alice.handle, "password": PASSWORD},
        )
        assert login.status == 200, login


# Compare-and-swap


SWAPPED_OPS = ("createRecord", "putRecord", "deleteRecord", "applyWrites")


@pytest.mark.parametrize("op", SWAPPED_OPS)
async def test_stale_swap_commit(tmp_path: Path, op: str) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        first = await env.create({"n": 1}, rkey="first")
        stale = first["commit"]["cid"]
        await env.create({"n": 2}, rkey="second")
        bodies: dict[str, dict[str, Any]] = {
            "createRecord": {"collection": UNKNOWN, "rkey": "third", "record": {"n": 3}},
            "putRecord": {"collection": UNKNOWN, "rkey": "first", "record": {"n": 10}},
            "deleteRecord": {"collection": UNKNOWN, "rkey": "first"},
            "applyWrites": {
                "writes": [
                    {
                        "$type": "com.atproto.repo.applyWrites#create",
                        "collection": UNKNOWN,
                        "rkey": "third",
                        "value": {"n": 3},
                    },
                    {
                        "$type": "com.atproto.repo.applyWrites#delete",
                        "collection": UNKNOWN,
                        "rkey": "first",
                    },
                ]
            },
        }
        body = {"repo": did, **bodies[op], "swapCommit": stale}
        await refused(
            env,
            env.post(f"com.atproto.repo.{op}", body, token=env.alice.access),
            400,
            "InvalidSwap",
        )
        # With the current commit, the same request goes through.
        current = (await env.state())["commit"]["cid"]
        reply = await env.post(
            f"com.atproto.repo.{op}", {**body, "swapCommit": current}, token=env.alice.access
        )
        assert reply.status == 200, reply


async def test_wrong_swap_record(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        first = await env.create({"n": 1}, rkey="first")
        other = await env.create({"n": 2}, rkey="other")
        wrong = other["cid"]
        for swap in (wrong, some_cid(b"never stored"), None):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.putRecord",
                    {
                        "repo": did,
                        "collection": UNKNOWN,
                        "rkey": "first",
                        "record": {"n": 10},
                        "swapRecord": swap,
                    },
                    token=env.alice.access,
                ),
                400,
                "InvalidSwap",
            )
        # swapRecord on a record that does not exist yet: only null ("must not exist") fits.
        await refused(
            env,
            env.post(
                "com.atproto.repo.putRecord",
                {
                    "repo": did,
                    "collection": UNKNOWN,
                    "rkey": "absent",
                    "record": {"n": 10},
                    "swapRecord": first["cid"],
                },
                token=env.alice.access,
            ),
            400,
            "InvalidSwap",
        )
        await refused(
            env,
            env.post(
                "com.atproto.repo.deleteRecord",
                {"repo": did, "collection": UNKNOWN, "rkey": "first", "swapRecord": wrong},
                token=env.alice.access,
            ),
            400,
            "InvalidSwap",
        )
        # The right swapRecord goes through.
        reply = await env.post(
            "com.atproto.repo.putRecord",
            {
                "repo": did,
                "collection": UNKNOWN,
                "rkey": "first",
                "record": {"n": 10},
                "swapRecord": first["cid"],
            },
            token=env.alice.access,
        )
        assert reply.status == 200, reply


async def test_writing_to_someone_elses_repo(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        bob = await env.create_user("bob")
        reply = await env.post(
            "com.atproto.repo.createRecord",
            {"repo": bob.did, "collection": UNKNOWN, "rkey": "mine", "record": {"n": 1}},
            token=bob.access,
        )
        assert reply.status == 200, reply
        for repo in (bob.did, bob.handle):
            bodies: dict[str, dict[str, Any]] = {
                "createRecord": {"collection": UNKNOWN, "record": {"n": 2}},
                "putRecord": {"collection": UNKNOWN, "rkey": "mine", "record": {"n": 3}},
                "deleteRecord": {"collection": UNKNOWN, "rkey": "mine"},
                "applyWrites": {
                    "writes": [
                        {
                            "$type": "com.atproto.repo.applyWrites#delete",
                            "collection": UNKNOWN,
                            "rkey": "mine",
                        }
                    ]
                },
            }
            for op, body in bodies.items():
                await refused(
                    env,
                    env.post(
                        f"com.atproto.repo.{op}", {"repo": repo, **body}, token=env.alice.access
                    ),
                    401,
                    "AuthenticationRequired",
                    user=bob,
                )


# Accounts and sessions


async def test_create_account_with_a_taken_handle(tmp_path: Path) -> None:
    # com.atproto.server.createAccount declares HandleNotAvailable for this. (The reference's
    # createAccount handler itself throws a plain InvalidRequest "Handle already taken"; its
    # updateHandle path uses HandleNotAvailable.)
    async with pds_env(tmp_path) as env:
        for handle in ("alice.test", "ALICE.test"):
            await refused_signup(env, handle, "other@example.com", "HandleNotAvailable")


async def test_create_account_with_an_invalid_handle(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        # Syntactically no handle at all: the lexicon (format "handle") refuses the input.
        for handle in ("-bad-.test", "no spaces.test", "justoneword", "a..b.test"):
            await refused_signup(env, handle, "new@example.com", "InvalidRequest")
        # A valid handle this PDS may not give out: more than one label under its domain.
        for handle in ("a.b.test", "x.alice.test"):
            await refused_signup(env, handle, "new@example.com", "InvalidHandle")


async def test_create_account_with_a_disallowed_tld(tmp_path: Path) -> None:
    # The reference checks the top-level domain before anything else about the handle
    # (account-manager.ts, normalizeAndValidateHandle: isValidTld) and answers 400
    # InvalidHandle "Handle TLD is invalid or disallowed" for .local, .arpa, .invalid,
    # .localhost, .internal, .example, .alt and .onion, wherever the handle points.
    async with pds_env(tmp_path) as env:
        for handle in ("alice.local", "alice.invalid", "alice.localhost", "bob.example"):
            await refused_signup(env, handle, "new@example.com", "InvalidHandle")


async def test_create_account_with_a_short_or_long_handle(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        for handle in ("ab.test", "a.test", "a" * 19 + ".test"):
            await refused_signup(env, handle, "new@example.com", "InvalidHandle")


async def test_create_account_with_a_taken_email(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        for email in (env.alice.email, env.alice.email.upper()):
            await refused_signup(env, "carol.test", email, "InvalidRequest")
        assert env.pds.accounts.by_handle("carol.test") is None


async def test_create_account_with_missing_fields(tmp_path: Path) -> None:
    # The reference creates a password-less account when the password is left out; this PDS
    # requires one, and refuses the request as the client's mistake.
    async with pds_env(tmp_path) as env:
        for body in (
            {"handle": "dave.test", "email": "dave@example.com"},
            {"handle": "dave.test", "email": "dave@example.com", "password": ""},
            {"handle": "dave.test", "password": PASSWORD},
            {"email": "dave@example.com", "password": PASSWORD},
            {"handle": "dave.test", "email": "dave@example.com", "password": 1234},
        ):
            await refused(
                env,
                env.post("com.atproto.server.createAccount", body),
                400,
                "InvalidRequest",
            )
        assert env.pds.accounts.by_handle("dave.test") is None


async def test_create_session_with_a_wrong_password(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        for identifier, password in (
            (env.alice.handle, "wrong password"),
            (env.alice.did, PASSWORD + " "),
            (env.alice.email, "x"),
            ("nobody.test", PASSWORD),
        ):
            reply = await env.post(
                "com.atproto.server.createSession",
                {"identifier": identifier, "password": password},
            )
            assert_error(reply, 401, "AuthenticationRequired")
            assert "accessJwt" not in reply.json


async def test_login_rate_limit(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        env.pds.login_limiter = LoginLimiter(per_account=3)
        for _ in range(3):
            reply = await env.post(
                "com.atproto.server.createSession",
                {"identifier": env.alice.handle, "password": "wrong password"},
            )
            assert_error(reply, 401, "AuthenticationRequired")
        # Past the limit even the right password is refused, with the limit in the headers.
        reply = await env.post(
            "com.atproto.server.createSession",
            {"identifier": env.alice.handle, "password": PASSWORD},
        )
        assert_error(reply, 429, "RateLimitExceeded")
        assert reply.headers.get("RateLimit-Limit") == "3"
        assert reply.headers.get("RateLimit-Remaining") == "0"
        # The limit is per account.
        bob = await env.create_user("bob")
        reply = await env.post(
            "com.atproto.server.createSession", {"identifier": bob.handle, "password": PASSWORD}
        )
        assert reply.status == 200, reply


# Lookups and references


async def test_record_referencing_a_blob_never_uploaded(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        missing = {
            "$type": "blob",
            "ref": {"$link": some_cid(b"never uploaded")},
            "mimeType": "image/png",
            "size": 1234,
        }
        profile = {"$type": PROFILE, "displayName": "Alice", "avatar": missing}
        await refused(
            env,
            env.post(
                "com.atproto.repo.putRecord",
                {"repo": did, "collection": PROFILE, "rkey": "self", "record": profile},
                token=env.alice.access,
            ),
            400,
            "BlobNotFound",
        )
        await refused(
            env,
            env.post(
                "com.atproto.repo.createRecord",
                {"repo": did, "collection": UNKNOWN, "record": {"file": missing}},
                token=env.alice.access,
            ),
            400,
            "BlobNotFound",
        )
        # A blob that was uploaded, referenced with the wrong MIME type or size.
        uploaded = await env.post(
            "com.atproto.repo.uploadBlob",
            data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
            headers={"Content-Type": "image/png"},
            token=env.alice.access,
        )
        assert uploaded.status == 200, uploaded
        blob = uploaded.json["blob"]
        for wrong in ({**blob, "mimeType": "image/jpeg"}, {**blob, "size": blob["size"] + 1}):
            await refused(
                env,
                env.post(
                    "com.atproto.repo.putRecord",
                    {
                        "repo": did,
                        "collection": PROFILE,
                        "rkey": "self",
                        "record": {"$type": PROFILE, "avatar": wrong},
                    },
                    token=env.alice.access,
                ),
                400,
                "InvalidRequest",
            )


async def test_get_blob_unknown(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        # The lexicon declares BlobNotFound; the reference's getBlob handler answers a plain
        # InvalidRequest "Blob not found". Either is a 400 the client can understand.
        reply = await env.get("com.atproto.sync.getBlob", {"did": did, "cid": some_cid(b"?")})
        assert_error(reply, 400, "BlobNotFound", "InvalidRequest")
        # Uploaded but never referenced by a record: not served either.
        uploaded = await env.post(
            "com.atproto.repo.uploadBlob",
            data=b"temporary",
            headers={"Content-Type": "text/plain"},
            token=env.alice.access,
        )
        assert uploaded.status == 200, uploaded
        cid = uploaded.json["blob"]["ref"]["$link"]
        reply = await env.get("com.atproto.sync.getBlob", {"did": did, "cid": cid})
        assert_error(reply, 400, "BlobNotFound", "InvalidRequest")
        reply = await env.get(
            "com.atproto.sync.getBlob", {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "cid": cid}
        )
        assert_error(reply, 400, "RepoNotFound")
        reply = await env.get("com.atproto.sync.getBlob", {"did": did, "cid": "not-a-cid"})
        assert_error(reply, 400, "InvalidRequest")


async def test_get_record_missing(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        did = env.alice.did
        created = await env.create({"n": 1}, rkey="present")
        for params in (
            {"repo": did, "collection": UNKNOWN, "rkey": "absent"},
            {"repo": env.alice.handle, "collection": POST, "rkey": "absent"},
            {"repo": did, "collection": UNKNOWN, "rkey": "present", "cid": some_cid(b"x")},
        ):
            reply = await env.get("com.atproto.repo.getRecord", params)
            assert_error(reply, 400, "RecordNotFound")
        assert created["uri"].endswith("/present")
        # An account this PDS does not host (and no AppView to ask).
        reply = await env.get(
            "com.atproto.repo.getRecord",
            {"repo": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "collection": UNKNOWN, "rkey": "x"},
        )
        assert_error(reply, 400, "InvalidRequest")


async def test_get_repo_unknown_did(tmp_path: Path) -> None:
    async with pds_env(tmp_path) as env:
        unknown = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
        for nsid in (
            "com.atproto.sync.getRepo",
            "com.atproto.sync.getLatestCommit",
            "com.atproto.sync.getRepoStatus",
            "com.atproto.sync.listBlobs",
        ):
            assert_error(await env.get(nsid, {"did": unknown}), 400, "RepoNotFound")
        reply = await env.get("com.atproto.sync.getRepo", {"did": "not-a-did"})
        assert_error(reply, 400, "InvalidRequest")


# Random input


_SPECIAL_STRINGS = (
    "",
    "\ud800",
    "x\udfffy",
    "blob",
    POST,
    UNKNOWN,
    PROFILE,
    "self",
    "..",
    NOW,
    "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
    "com.atproto.repo.applyWrites#create",
    "com.atproto.repo.applyWrites#update",
    "com.atproto.repo.applyWrites#delete",
)
_SPECIAL_KEYS = (
    "$type",
    "$link",
    "$bytes",
    "ref",
    "mimeType",
    "size",
    "text",
    "createdAt",
    "collection",
    "rkey",
    "value",
    "",
    "\ud800",
)
_text = st.text(max_size=12)
# Lone surrogates: JSON can spell them ("\\ud800"), Unicode text cannot hold them.
_surrogates = st.builds(
    "".join,
    st.lists(
        st.one_of(_text, st.sampled_from(("\ud800", "\udfff", "\ud83d"))), min_size=1, max_size=3
    ),
)
_strings = st.one_of(_text, _text, st.sampled_from(_SPECIAL_STRINGS), _surrogates)
_keys = st.one_of(st.text(max_size=8), st.text(max_size=8), st.sampled_from(_SPECIAL_KEYS))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _strings,
    _strings,
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)
_objects = st.dictionaries(_keys, json_values, max_size=6)
# Posts that are nearly right, so that validation gets past the first field.
_posts = st.fixed_dictionaries(
    {
        "$type": st.just(POST),
        "text": st.one_of(_text, _text, json_values),
        "createdAt": st.one_of(st.just(NOW), st.just(NOW), json_values),
    },
    optional={
        "langs": st.one_of(st.just(["en"]), json_values),
        "facets": json_values,
        "embed": json_values,
        "reply": json_values,
        "labels": json_values,
        "tags": json_values,
    },
)
random_records = st.one_of(_objects, _objects, _posts, json_values)
_write_items = st.fixed_dictionaries(
    {
        "$type": st.one_of(st.sampled_from(_SPECIAL_STRINGS[-3:]), _strings),
        "collection": st.one_of(st.sampled_from((POST, UNKNOWN, PROFILE)), json_values),
    },
    optional={
        "rkey": st.one_of(st.sampled_from(("self", "3kabc", "..", "a")), json_values),
        "value": random_records,
    },
)
random_writes = st.one_of(
    st.lists(_write_items, max_size=4),
    st.lists(_write_items | json_values, max_size=3),
    json_values,
)


class BackgroundServices:
    """A PLC directory and a PDS on an event loop in another thread, for synchronous tests."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stack = contextlib.AsyncExitStack()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> Env:
        plc = await self.stack.enter_async_context(running_plc(self.tmp_path / "plc"))
        running = await self.stack.enter_async_context(running_pds(self.tmp_path / "pds", plc.url))
        http = await self.stack.enter_async_context(aiohttp.ClientSession())
        env = Env(running.url, running.pds, http)
        env.alice = await env.create_user("alice")
        return env

    def __enter__(self) -> BackgroundServices:
        self.thread.start()
        try:
            self.env = self.run(self._start())
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def test_random_json_is_answered_with_200_or_a_4xx_envelope(tmp_path: Path) -> None:
    """Random JSON as createRecord's `record` and applyWrites' `writes`: every answer is a
    success or a 4xx error envelope that left the repository alone, never a server error.

    Synchronous so that hypothesis drives it; the services run once, on their own loop."""
    with BackgroundServices(tmp_path) as services:
        env = services.env

        async def snapshot() -> tuple[Any, int]:
            root = env.pds.stores.open(env.alice.did).root()
            return (root[0] if root else None, env.pds.sequencer.last_seq)

        def check(nsid: str, body: Any) -> None:
            before = services.run(snapshot())
            reply = services.run(env.post(nsid, body, token=env.alice.access))
            assert reply.status < 500, (nsid, body, reply)
            if reply.status == 200:
                return
            assert 400 <= reply.status < 500, (nsid, body, reply)
            assert isinstance(reply.json, dict), (nsid, body, reply)
            assert isinstance(reply.json.get("error"), str), (nsid, body, reply)
            assert isinstance(reply.json.get("message"), str), (nsid, body, reply)
            assert services.run(snapshot()) == before, (nsid, body, reply)

        @settings(
            max_examples=100,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            record=random_records,
            collection=st.sampled_from((UNKNOWN, UNKNOWN, POST, PROFILE)),
            validate=st.sampled_from((None, True, False)),
            writes=random_writes,
        )
        def answers(record: Any, collection: str, validate: bool | None, writes: Any) -> None:
            if isinstance(record, dict) and record.get("$type") == POST:
                collection = POST
            body: dict[str, Any] = {
                "repo": env.alice.did,
                "collection": collection,
                "record": record,
            }
            if collection == PROFILE:
                body["rkey"] = "self"
            batch: dict[str, Any] = {"repo": env.alice.did, "writes": writes}
            if validate is not None:
                body["validate"] = batch["validate"] = validate
            check("com.atproto.repo.createRecord", body)
            check("com.atproto.repo.applyWrites", batch)

        answers()


async def test_put_preferences_refuses_what_is_not_a_preference_list(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        running_pds(tmp_path / "pds", plc.url) as pds,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(
            f"{pds.url}/xrpc/com.atproto.server.createAccount",
            json={"handle": "prefs.test", "email": "p@example.test", "password": "pw"},
        ) as resp:
            token = (await resp.json())["accessJwt"]
        auth = {"Authorization": f"Bearer {token}"}
        url = f"{pds.url}/xrpc/app.bsky.actor.putPreferences"
        for body in ([1, 2], {"preferences": "x"}, {"preferences": [{"$type": "com.x.y"}]}):
            async with http.post(url, json=body, headers=auth) as resp:
                assert resp.status == 400, body
                assert (await resp.json())["error"] == "InvalidRequest"
        prefs = [{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": False}]
        async with http.post(url, json={"preferences": prefs}, headers=auth) as resp:
            assert resp.status == 200
        async with http.get(f"{pds.url}/xrpc/app.bsky.actor.getPreferences", headers=auth) as resp:
            assert (await resp.json())["preferences"] == prefs
