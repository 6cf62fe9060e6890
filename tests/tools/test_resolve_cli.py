"""`strata resolve` against a directory on loopback."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from strata.core.crypto import K256Keypair
from strata.core.plc import did_for_genesis, sign_operation
from tests.plcops import genesis
from tests.services import running_plc


async def run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "strata",
        "resolve",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_resolve_prints_the_identity(tmp_path: Path) -> None:
    key = K256Keypair.generate()
    _, claimed = genesis([key], key, pds="http://127.0.0.1:2583")
    # No handle claimed, so resolution makes no DNS or well-known lookups off loopback.
    unsigned = {k: v for k, v in claimed.items() if k != "sig"}
    op = sign_operation({**unsigned, "alsoKnownAs": []}, key)
    did = did_for_genesis(op)
    async with running_plc(tmp_path) as plc:
        await plc.directory.submit(did, op)
        code, out = await run(did, "--plc", "http://127.0.0.1:9", "--plc", plc.url)
        assert code == 0, out
        assert f"did:          {did}" in out
        assert "pds:          http://127.0.0.1:2583" in out
        assert "handle:       handle.invalid" in out
        code, out = await run("did:plc:nope", "--plc", plc.url)
        assert code == 1 and "InvalidIdentifier" in out
