"""`com.atproto.moderation.createReport` on the PDS: with no `atproto-proxy` header it goes to
the configured report service (`--report-service URL#DID`), as the reference PDS's
`reportServiceUrl`/`reportServiceDid`; without one it is refused as the reference refuses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner

from strata.labeler.app import create_labeler_app
from strata.labeler.service import Labeler
from strata.pds.cli import pds_command
from strata.pds.config import AppView
from tests.relay.xrpc import PdsUser
from tests.services import running_pds, running_plc, serving

CREATE_REPORT = "com.atproto.moderation.createReport"
REPORT = {
    "reasonType": "com.atproto.moderation.defs#reasonSpam",
    "reason": "ads",
    "subject": {
        "$type": "com.atproto.admin.defs#repoRef",
        "did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa",
    },
}


async def report(user: PdsUser, **headers: str) -> tuple[int, dict[str, Any]]:
    async with user.http.post(
        f"{user.pds}/xrpc/{CREATE_REPORT}",
        json=REPORT,
        headers={"Authorization": f"Bearer {user.token}", **headers},
    ) as response:
        return response.status, await response.json()


async def test_reports_go_to_the_report_service(tmp_path: Path) -> None:
    async with (
        running_plc(tmp_path / "plc") as plc,
        aiohttp.ClientSession() as http,
        running_pds(tmp_path / "bare", plc.url) as bare,
    ):
        alice = await PdsUser.create(http, bare.url, "alice.test")
        status, body = await report(alice)
        assert (status, body["error"]) == (400, "InvalidRequest")
        assert body["message"] == f"No service configured for {CREATE_REPORT}"

        moderator = await PdsUser.create(http, bare.url, "mod.test")
        labeler = Labeler(moderator.did, tmp_path / "labeler")
        async with (
            serving(create_labeler_app(labeler, (plc.url,), dev=True)) as labeler_url,
            running_pds(
                tmp_path / "pds", plc.url, report_service=AppView(labeler_url, moderator.did)
            ) as pds,
        ):
            bob = await PdsUser.create(http, pds.url, "bob.test")
            status, body = await report(bob)
            assert status == 200, body
            assert body["reportedBy"] == bob.did and body["reason"] == "ads"
            # A header naming a service still wins: here one that is not there.
            status, body = await report(bob, **{"atproto-proxy": "did:web:nowhere.test#x"})
            assert status == 400, body
            # The report service saw bob's report only.
            assert [r["reportedBy"] for r in labeler.store.reports(None, 10)] == [bob.did]


def test_cli_wants_the_report_service_did(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        pds_command, ["--data-dir", str(tmp_path), "--report-service", "http://127.0.0.1:2587"]
    )
    assert result.exit_code == 2
    assert "--report-service" in result.output and "URL#DID" in result.output
