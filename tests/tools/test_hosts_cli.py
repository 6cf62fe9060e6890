"""`strata hosts` against a `strata relay` process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services import service_process


def strata(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strata", *args], capture_output=True, text=True, timeout=60
    )


def test_operator_commands(tmp_path: Path) -> None:
    data = tmp_path / "relay"
    with service_process("relay", data, "--dev", "--plc-url", "http://127.0.0.1:9") as (url, _):
        base = ("hosts", "--relay", url, "--data-dir", str(data))
        listed = strata(*base, "list")
        assert listed.returncode == 0 and listed.stdout == ""

        refused = strata(*base, "add", "http://127.0.0.1:9")
        assert refused.returncode != 0 and "HostNotFound" in refused.stderr

        wrong = strata("hosts", "--relay", url, "--password", "guess", "list")
        assert wrong.returncode != 0 and "AuthenticationRequired" in wrong.stderr

        unknown = strata(*base, "ban", "nowhere.example")
        assert unknown.returncode != 0 and "HostNotFound" in unknown.stderr

    missing = strata("hosts", "--data-dir", str(tmp_path / "none"), "list")
    assert missing.returncode != 0 and "--password" in missing.stderr
    down = strata(*base, "list")
    assert down.returncode != 0 and "Is `strata relay` running?" in down.stderr
