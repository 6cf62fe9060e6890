"""A backup of an account in one directory: `repo.car`, `blobs/<cid>`, `preferences.json`, and
`account.json` naming the account and listing the blobs with their media types.

Exports are incremental: blobs already in the directory (and intact) are not fetched again.
Every file is written to a temporary name and renamed, so a cut-off export leaves the last
complete files in place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.core.cid import CID
from strata.migration.transfer import PdsSource, RepoSummary, TransferFailed, summarize
from strata.storage import write_private

ACCOUNT_FILE = "account.json"
REPO_FILE = "repo.car"
PREFERENCES_FILE = "preferences.json"
BLOBS_DIR = "blobs"


@dataclass(frozen=True)
class ExportReport:
    summary: RepoSummary
    blobs_fetched: int
    blobs_kept: int
    preferences: int


async def export_account(
    source: PdsSource, handle: str, pds: str, out: Path, progress: Callable[[int, int, str], None]
) -> ExportReport:
    """Write the account's repository, blobs and preferences into `out`."""
    car = await source.repo()
    summary = summarize(car)
    previous = _read_account(out) if (out / ACCOUNT_FILE).exists() else {}
    mime_types: dict[str, str] = dict(previous.get("blobs", {}))
    fetched = kept = 0
    for n, cid in enumerate(sorted(summary.blobs), 1):
        path = out / BLOBS_DIR / cid
        if cid in mime_types and path.exists() and CID.from_str(cid).verify(path.read_bytes()):
            kept += 1
            continue
        data, mime = await source.blob(cid)
        if not CID.from_str(cid).verify(data):
            raise TransferFailed(f"blob {cid} arrived with other content")
        write_private(path, data)
        mime_types[cid] = mime
        fetched += 1
        progress(n, len(summary.blobs), cid)
    preferences = await source.preferences()
    write_private(out / REPO_FILE, car)
    write_private(out / PREFERENCES_FILE, json.dumps(preferences, indent=2).encode())
    account = {
        "did": summary.did,
        "handle": handle,
        "pds": pds,
        "root": summary.root,
        "rev": summary.rev,
        "records": summary.records,
        "blobs": {cid: mime_types[cid] for cid in sorted(summary.blobs)},
        "exportedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_private(out / ACCOUNT_FILE, json.dumps(account, indent=2).encode())
    return ExportReport(summary, fetched, kept, len(preferences))


def _read_account(directory: Path) -> dict[str, Any]:
    try:
        account = json.loads((directory / ACCOUNT_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise TransferFailed(f"{directory} is not a Strata account backup: {exc}") from exc
    if not isinstance(account, dict) or not str(account.get("did", "")).startswith("did:"):
        raise TransferFailed(f"{directory / ACCOUNT_FILE} names no account")
    return account


class BackupSource:
    """An account's data from a backup directory (a `Source` for imports and recovery)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.account = _read_account(directory)
        self.did: str = self.account["did"]
        self.handle: str | None = self.account.get("handle")

    async def repo(self) -> bytes:
        return (self.directory / REPO_FILE).read_bytes()

    async def blob(self, cid: str) -> tuple[bytes, str]:
        mime = self.account.get("blobs", {}).get(cid)
        path = self.directory / BLOBS_DIR / cid
        if mime is None or not path.exists():
            raise TransferFailed(f"the backup in {self.directory} has no blob {cid}")
        return path.read_bytes(), str(mime)

    async def preferences(self) -> list[object]:
        path = self.directory / PREFERENCES_FILE
        return list(json.loads(path.read_text())) if path.exists() else []
