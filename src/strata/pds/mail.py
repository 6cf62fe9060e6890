"""Mail the PDS writes for its accounts (confirmation codes), kept in its data directory's
outbox for the operator to deliver, and read back by the node's own tools."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

OUTBOX: Final = Path("mail") / "outbox"
_CODE = re.compile(r"code: (\S+)")


class NoCode(LookupError):
    """No mail with a code was written to the account."""


def outbox_code(pds_data_dir: Path, did: str, purpose: str = "plc_operation") -> str:
    """The code the PDS with `pds_data_dir` last mailed to `did` for `purpose`."""
    mails = sorted((pds_data_dir / OUTBOX).glob(f"*{purpose}-{did.replace(':', '_')}*"))
    found = _CODE.search(mails[-1].read_text()) if mails else None
    if found is None:
        raise NoCode(f"no {purpose} code for {did} in {pds_data_dir / OUTBOX}")
    return found.group(1)
