"""Conformance suite: the vectors are read at collection time.

Without the vectors every parametrized test collects empty and skips; `test_vectors_present`
turns that into a failure under `CI=true`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import conformance_dir


def vector_path(*parts: str) -> Path | None:
    """Path of a file or folder in the conformance directory, or None when it is absent."""
    root = conformance_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None


def interop_json(*parts: str) -> Any:
    """A JSON file from `atproto-interop-tests`, or an empty list when absent."""
    path = vector_path("atproto-interop-tests", *parts)
    if path is None:
        return []
    with path.open() as f:
        return json.load(f)


def interop_lines(*parts: str) -> list[str]:
    """The vectors of a line-per-vector file (comments and blank lines dropped)."""
    path = vector_path("atproto-interop-tests", *parts)
    if path is None:
        return []
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
