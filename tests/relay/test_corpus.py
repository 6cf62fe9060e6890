"""The relay's verification accepts every frame recorded from the official PDS."""

from __future__ import annotations

import collections
from pathlib import Path

import aiohttp
import pytest

from strata.identity import IdentityResolver
from strata.relay.events import RelayEvents
from strata.relay.ingest import REJECTED, Ingest
from strata.relay.store import RelayStore
from tests.corpus import corpus_dir, frames, load_directory, raw_frames
from tests.services import running_plc


def rejected_total() -> float:
    return sum(s.value for m in REJECTED.collect() for s in m.samples if s.name.endswith("_total"))


async def test_every_recorded_frame_is_accepted(tmp_path: Path, database_url: str | None) -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("the official corpus is not beside the conformance vectors")
    async with running_plc(tmp_path / "plc") as plc, aiohttp.ClientSession() as http:
        await load_directory(plc.directory, corpus)
        store = await RelayStore.open(database_url, tmp_path / "relay.sqlite")
        events = RelayEvents(store, 0)
        resolver = IdentityResolver(http, [plc.url], dev=True)
        # The recorded DID documents name the official PDS at http://localhost:2583.
        host = await store.add_host("localhost:2583", True, "pds", 1000, 0)
        desynced: list[str] = []
        ingest = Ingest(store, events, resolver, {host.id: host}, True, desynced.append)
        before = rejected_total()
        for number, frame in enumerate(raw_frames(corpus)):
            await ingest.handle(host, frame)
            if number % 500 == 0:
                store.update_host(host)
                await events.commit()
        await events.commit()

        expected = collections.Counter(header["t"] for header, _ in frames(corpus))
        emitted = collections.Counter(
            row[0] for row in await store.db.fetch("SELECT event_type FROM relay_seq")
        )
        assert rejected_total() == before and desynced == []
        assert emitted["#commit"] == expected["#commit"] == 5627
        assert emitted == expected
        assert host.last_seq == 5763
        await store.close()
