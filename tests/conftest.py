"""Shared fixtures: where the conformance vectors live."""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance"


def conformance_dir() -> Path | None:
    """The conformance directory from `$STRATA_CONFORMANCE_DIR`, else `../shared/conformance`."""
    env = os.environ.get("STRATA_CONFORMANCE_DIR")
    path = Path(env) if env else _DEFAULT
    return path if path.is_dir() else None
