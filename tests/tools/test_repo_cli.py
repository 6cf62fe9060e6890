"""`strata repo` on CARs written by Strata and by the official PDS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from strata.cli import main
from strata.core.car import read_car, write_car
from strata.core.cid import CID
from strata.core.crypto import K256Keypair
from strata.core.repo import Repository, Write, export_car
from tests.corpus import corpus_dir, frames, signing_keys

POST = "app.bsky.feed.post"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def repo_car(tmp_path: Path) -> tuple[Path, K256Keypair]:
    key = K256Keypair.generate()
    writes = [
        Write("create", POST, f"3kabc{i:08d}", {"$type": POST, "text": f"post {i}"})
        for i in range(30)
    ]
    writes.append(Write("create", "app.bsky.actor.profile", "self", {"displayName": "Al"}))
    repo = Repository.create({}, "did:plc:abcdefghijklmnopqrstuvwx", key, writes).repo
    path = tmp_path / "repo.car"
    path.write_bytes(b"".join(export_car(repo)))
    return path, key


def test_inspect_ls_get(repo_car: tuple[Path, K256Keypair]) -> None:
    path, _ = repo_car
    code, out = _run("repo", "inspect", str(path))
    assert code == 0
    assert "did:plc:abcdefghijklmnopqrstuvwx" in out
    assert "app.bsky.feed.post" in out and "30" in out
    code, out = _run("repo", "ls", str(path))
    assert code == 0 and len(out.splitlines()) == 31
    code, out = _run("repo", "get", str(path), f"{POST}/3kabc00000007")
    assert code == 0 and json.loads(out)["text"] == "post 7"
    code, out = _run("repo", "get", str(path), f"{POST}/nope")
    assert code == 1 and "no record" in out


def test_verify_with_and_without_key(repo_car: tuple[Path, K256Keypair]) -> None:
    path, key = repo_car
    code, out = _run("repo", "verify", str(path), "--did-key", key.did())
    assert code == 0, out
    assert "ok  commit signature" in out
    code, out = _run("repo", "verify", str(path), "--did-key", K256Keypair.generate().did())
    assert code == 1 and "signature does not verify" in out


def test_verify_rejects_tampering(repo_car: tuple[Path, K256Keypair], tmp_path: Path) -> None:
    path, _ = repo_car
    root, blocks = read_car(path.read_bytes())
    record = next(c for c in blocks if c.codec == 0x71 and b"post 3" in blocks[c])
    bad = tmp_path / "missing.car"
    bad.write_bytes(write_car([root], [(c, b) for c, b in blocks.items() if c != record]))
    code, out = _run("repo", "verify", str(bad))
    assert code == 1 and "missing" in out

    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    bad.write_bytes(bytes(data))
    code, out = _run("repo", "verify", str(bad))
    assert code == 1 and "does not match its CID" in out

    bad.write_bytes(b"not a car")
    code, out = _run("repo", "verify", str(bad))
    assert code == 1 and "not a valid repository CAR" in out


def test_official_pds_repository(tmp_path: Path) -> None:
    """Rebuild an account's repo from the official PDS's own firehose blocks and verify it."""
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("the official corpus is not beside the conformance vectors")
    blocks: dict[str, dict[CID, bytes]] = {}
    heads: dict[str, CID] = {}
    counts: dict[str, int] = {}
    for header, body in frames(corpus):
        if header.get("t") != "#commit":
            continue
        did = body["repo"]
        blocks.setdefault(did, {}).update(read_car(body["blocks"])[1])
        heads[did] = body["commit"]
        counts[did] = counts.get(did, 0) + 1
    did = max(counts, key=lambda d: counts[d])
    repo = Repository.load(blocks[did], heads[did])
    path = tmp_path / "official.car"
    path.write_bytes(b"".join(export_car(repo)))
    code, out = _run("repo", "verify", str(path), "--did-key", signing_keys(corpus)[did])
    assert code == 0, out
    code, out = _run("repo", "inspect", str(path))
    assert code == 0 and did in out
