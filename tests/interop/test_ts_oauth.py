"""The official OAuth client (`@atproto/oauth-client-node`, a loopback client) signs in to
Strata's PDS and calls it with its DPoP-bound token through `@atproto/api`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.interop.peers import HERE, official_pds_module, require_peers
from tests.pds.oauth_client import network_with_account, sign_in_on_page

SCRIPT = HERE / "oauth_client.mjs"
PASSWORD = "oauth-interop-password"


async def test_official_oauth_client_signs_in_and_calls_the_pds(tmp_path: Path) -> None:
    require_peers()
    async with network_with_account(
        tmp_path, "olive.test", "olive@example.com", PASSWORD
    ) as network:
        pds, http, did = network.pds, network.http, network.did
        node = await asyncio.create_subprocess_exec(
            str(official_pds_module.node_bin()), str(SCRIPT), "olive.test",
            network.issuer, network.plc_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert node.stdout is not None and node.stderr is not None
            first = await asyncio.wait_for(node.stdout.readline(), 60)
            started = json.loads(first or b"{}")
            assert "authorize" in started, (first, await node.stderr.read())
            location = await sign_in_on_page(http, started["authorize"], "olive.test", PASSWORD)
            assert location.startswith(started["callback"]), location
            async with http.get(location) as response:
                report = await response.json()
            assert report["ok"], report
            steps = report["steps"]
            assert steps["callback"]["did"] == did
            assert steps["createRecord"]["uri"].startswith(f"at://{did}/app.bsky.feed.post/")
            assert steps["getSession"] == {"did": did, "handle": "olive.test", "hasEmail": False}
            assert steps["refresh"]["scope"] == "atproto transition:generic"
            assert steps["afterRefresh"]["records"] == 1
            # Signing out revoked the authorization at the PDS, not only in the client.
            assert steps["signOut"]["refused"] is not None
            tokens = pds.pds.accounts.conn.execute(
                "SELECT count(*) FROM oauth_token WHERE did = ?", (did,)
            ).fetchone()
            assert tokens == (0,)
            assert await asyncio.wait_for(node.wait(), 10) == 0
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
