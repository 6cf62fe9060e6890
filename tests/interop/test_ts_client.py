"""The official TypeScript client (`@atproto/api`) against Strata's PDS."""

from __future__ import annotations

from pathlib import Path

from tests.interop.peers import require_peers, run_node
from tests.interop.test_official_pds import API_CLIENT, EXPECTED_STEPS, _report
from tests.services import running_pds, running_plc


async def test_official_client_against_strata_pds(tmp_path: Path) -> None:
    require_peers()
    async with running_plc(tmp_path / "plc") as plc, running_pds(tmp_path / "pds", plc.url) as pds:
        result = await run_node(API_CLIENT, pds.url, timeout=45)
        report = _report(result)
        assert report.get("ok") is True and result.returncode == 0, (
            f"api_client.mjs failed at {report.get('failed_step')}: {report.get('error')}\n"
            f"stderr:\n{result.stderr[-3000:]}"
        )
        assert set(report["steps"]) == EXPECTED_STEPS  # type: ignore[arg-type]
        # Every write the client made is in the repository and on the firehose.
        did = report["did"]
        assert isinstance(did, str)
        assert pds.pds.stores.open(did).record_count() >= 3
        assert pds.pds.sequencer.last_seq > 0
