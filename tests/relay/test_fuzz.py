"""Whatever a host sends, the relay's decoding and verification answer with a verdict, never
with a crash."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core.cid import CID
from strata.core.crypto import K256Keypair
from strata.core.frames import message_frame
from strata.core.repo import Repository, Write
from strata.identity import IdentityResolver
from strata.identity.errors import ResolutionFailed
from strata.pds.sequencer import commit_body
from strata.relay.events import RelayEvents
from strata.relay.ingest import Ingest, UpstreamError
from strata.relay.store import RelayStore
from strata.relay.verify import Checked, Rejected, check_commit, check_sync

KEY = K256Keypair.generate()
DID = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
POST = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-11-21T00:00:00Z"}
FIRST = Repository.create({}, DID, KEY, [Write("create", "app.bsky.feed.post", "a", POST)])
SECOND = FIRST.repo.apply_writes([Write("create", "app.bsky.feed.post", "b", POST)], KEY)
BODY = commit_body(DID, SECOND, [], "2026-11-21T00:00:00.000Z")
NOW_US = 1_900_000_000_000_000

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40)
    | st.just(SECOND.cid)
    | st.just(CID.raw_from_digest(b"\x00" * 32)),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def test_the_unchanged_commit_verifies() -> None:
    assert isinstance(check_commit(BODY, KEY.public_key, FIRST.commit.rev, NOW_US), Checked)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(sorted(BODY)), values, min_size=1, max_size=3), st.booleans()
)
def test_any_changed_field_gets_a_verdict(changes: dict[str, Any], strict: bool) -> None:
    body = {**BODY, **changes}
    with contextlib.suppress(Rejected):
        check_commit(body, KEY.public_key, FIRST.commit.rev, NOW_US, strict=strict)
    with contextlib.suppress(Rejected):
        check_sync(body, KEY.public_key, FIRST.commit.rev, NOW_US)


async def _handle_all(tmp: Path, frames: list[bytes], database_url: str | None) -> int:
    store = await RelayStore.open(database_url, tmp / "relay.sqlite")
    try:
        events = RelayEvents(store, 0)
        async with aiohttp.ClientSession() as http:
            # Nothing listens on the discard port: any lookup fails at once, on loopback.
            resolver = IdentityResolver(http, ["http://127.0.0.1:9"], dev=True, timeout=0.5)
            host = await store.add_host("localhost:1", True, "pds", 100, 0)
            ingest = Ingest(store, events, resolver, {host.id: host}, True, lambda _d: None)
            for frame in frames:
                with contextlib.suppress(ResolutionFailed, UpstreamError):
                    await ingest.handle(host, frame)
        await events.commit()
        return await store.last_seq()
    finally:
        await store.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.binary(max_size=200)
        | st.builds(
            message_frame,
            st.sampled_from(["#commit", "#sync", "#identity", "#account", "#x"]),
            st.dictionaries(
                st.sampled_from(
                    ["seq", "did", "repo", "rev", "active", "status", "time", "blocks", "ops"]
                ),
                values,
                max_size=5,
            ),
        ),
        max_size=5,
    )
)
def test_garbage_frames_change_nothing(
    tmp_path_factory: Any, database_url: str | None, frames: list[bytes]
) -> None:
    tmp = tmp_path_factory.mktemp("fuzz")
    assert asyncio.run(_handle_all(tmp, frames, database_url)) == 0
