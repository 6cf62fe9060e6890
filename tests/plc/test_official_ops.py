"""Operations made by the official `@did-plc/lib`, replayed against our directory.

The corpus is recorded by `tests/fixtures/plc/generate.sh`; each line says whether the
reference accepts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from strata.core.plc import operation_cid, validate_operation_log
from tests.services import running_plc

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "plc" / "official-ops.jsonl"


def corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def test_corpus_cids_match_ours() -> None:
    for line in corpus():
        assert str(operation_cid(line["operation"])) == line["cid"], line["step"]


async def test_directory_agrees_with_the_reference_on_every_operation(
    tmp_path: Path, database_url: str | None
) -> None:
    lines = corpus()
    async with (
        running_plc(tmp_path, database_url=database_url) as plc,
        aiohttp.ClientSession() as http,
    ):
        for line in lines:
            async with http.post(f"{plc.url}/{line['did']}", json=line["operation"]) as resp:
                body = await resp.text()
            accepted = resp.status == 200
            assert accepted == (line["expect"] == "accept"), (line["step"], resp.status, body)
            if not accepted:
                assert resp.status == 400 and json.loads(body)["message"]

        for line in lines:
            if not line["nullifies"]:
                continue
            async with http.get(f"{plc.url}/{line['did']}/log/audit") as resp:
                audit = {entry["cid"]: entry["nullified"] for entry in await resp.json()}
            assert all(audit[cid] for cid in line["nullifies"])
            assert audit[line["cid"]] is False


def test_legacy_create_logs_validate() -> None:
    legacy = [line for line in corpus() if line.get("legacy")]
    assert len(legacy) == 2
    did = legacy[0]["did"]
    data = validate_operation_log(did, [line["operation"] for line in legacy])
    assert data is not None and data.did == did
