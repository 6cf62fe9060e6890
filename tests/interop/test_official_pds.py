"""The official TypeScript client against the official TypeScript PDS, with Strata's PLC directory.

This checks the harness itself (bench/peers/official_pds.py, tests/interop/api_client.mjs) and
that the official PDS accepts Strata's directory as its PLC. Skipped when the peers are not
installed (`bash bench/peers/setup.sh`), failed instead under CI=true.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from tests.interop.peers import (
    HERE,
    NodeResult,
    official_network,
    official_pds_module,
    require_peers,
    run_node,
)

API_CLIENT = HERE / "api_client.mjs"

EXPECTED_STEPS = {
    "createAccount",
    "createSecondAccount",
    "login",
    "getSession",
    "post",
    "like",
    "follow",
    "uploadBlob",
    "postWithImage",
    "getRecord",
    "listRecords",
    "describeRepo",
    "getLatestCommit",
    "getRepo",
    "putPreferences",
    "getPreferences",
    "deleteLike",
    "refreshSession",
}


def _report(result: NodeResult) -> dict[str, object]:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"api_client.mjs printed nothing (exit {result.returncode}):\n{result.stderr}"
    report: dict[str, object] = json.loads(lines[-1])
    return report


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def test_plc_url_for_pds_spells_loopback_as_localhost() -> None:
    to_pds = official_pds_module.plc_url_for_pds
    assert to_pds("http://127.0.0.1:2582/") == "http://localhost:2582"
    assert to_pds("http://127.0.0.1") == "http://localhost"
    assert to_pds("http://localhost:2582") == "http://localhost:2582"
    assert to_pds("https://plc.example.test") == "https://plc.example.test"


async def test_official_client_against_official_pds(tmp_path: Path) -> None:
    require_peers()
    async with official_network(tmp_path) as net:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{net.pds_url}/xrpc/_health") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["version"] == official_pds_module.PDS_VERSION

        result = await run_node(API_CLIENT, net.pds_url, timeout=45)
        report = _report(result)
        assert report.get("ok") is True and result.returncode == 0, (
            f"api_client.mjs failed at {report.get('failed_step')}: {report.get('error')}\n"
            f"stderr:\n{result.stderr[-3000:]}\n"
            f"official PDS log:\n{_tail(net.pds.log_path)}"
        )
        steps = report["steps"]
        assert isinstance(steps, dict)
        assert set(steps) == EXPECTED_STEPS

        # The accounts live in Strata's directory, pointing at the PDS.
        did = report["did"]
        assert isinstance(did, str) and did.startswith("did:plc:")
        async with aiohttp.ClientSession() as http, http.get(f"{net.plc_url}/{did}") as resp:
            assert resp.status == 200, await resp.text()
            doc = await resp.json(content_type=None)
        endpoints = [s.get("serviceEndpoint") for s in doc.get("service", [])]
        assert net.pds.public_url in endpoints, doc
        assert f"at://{report['handle']}" in doc.get("alsoKnownAs", []), doc
