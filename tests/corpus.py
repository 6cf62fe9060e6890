"""Reading the official corpus: firehose frames and the directory export recorded beside Strata."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbrrr

from strata.core.cid import CID
from strata.core.plc import parse_operation
from strata.plc.directory import Directory
from strata.plc.store import parse_created_at
from tests.conftest import conformance_dir


def corpus_dir() -> Path | None:
    """The corpus folder beside the conformance vectors, or None."""
    root = conformance_dir()
    if root is None:
        return None
    path = root.parent / "corpus"
    return path if (path / "official-firehose.frames").exists() else None


def frames(corpus: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(header, body) of every recorded frame."""
    for frame in raw_frames(corpus):
        header, body = cbrrr.decode_multi_dag_cbor_in_violation_of_the_spec(frame, cid_ctor=CID)
        yield header, body


def signing_keys(corpus: Path) -> dict[str, str]:
    """Each DID's latest atproto signing key (did:key) from the directory export."""
    keys: dict[str, str] = {}
    for line in (corpus / "official-plc-export.jsonl").read_text().splitlines():
        entry = json.loads(line)
        methods = entry["operation"].get("verificationMethods")
        if methods:
            keys[entry["did"]] = methods["atproto"]
    return keys


def raw_frames(corpus: Path) -> Iterator[bytes]:
    """Every recorded frame as the WebSocket message it was."""
    data = (corpus / "official-firehose.frames").read_bytes()
    pos = 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        yield data[pos + 4 : pos + 4 + size]
        pos += 4 + size


async def load_directory(directory: Directory, corpus: Path) -> None:
    """Put every operation of the recorded directory export into `directory`, verified."""
    pending = []
    for number, line in enumerate((corpus / "official-plc-export.jsonl").read_text().splitlines()):
        entry = json.loads(line)
        pending.append(
            directory.ingest(
                entry["did"],
                parse_operation(entry["operation"]),
                parse_created_at(entry["createdAt"]),
                ("corpus", str(number)),
            )
        )
    await asyncio.gather(*pending)
