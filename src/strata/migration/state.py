"""The migration's state file: which steps are done, so that a re-run continues where the last
one stopped and never repeats a step that must happen once."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from strata.storage import write_private

STATE_VERSION = 1


class StateMismatch(Exception):
    """The state file belongs to another migration."""


@dataclass
class MigrationState:
    """What a migration has done so far. Saved after every step and every blob."""

    path: Path
    did: str
    source: str
    destination: str
    done: dict[str, float] = field(default_factory=dict)
    token_requested: bool = False
    signed_operation: dict[str, Any] | None = None
    # Recovery only: the signing key that stands in until the new PDS has its own (hex).
    interim_key: str | None = None
    # The repository last imported: its root, rev, record and blob counts.
    imported: dict[str, Any] | None = None
    blobs_copied: int = 0
    preferences_copied: int = 0

    @classmethod
    def open(cls, path: Path, did: str, source: str, destination: str) -> MigrationState:
        """The state saved at `path`, or a fresh one. Raises `StateMismatch` when the file
        describes a different account or destination."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path, did, source, destination)
        except (OSError, ValueError) as exc:
            raise StateMismatch(f"cannot read {path}: {exc}") from exc
        if raw.get("version") != STATE_VERSION:
            raise StateMismatch(f"{path} was written by another version of this tool")
        if raw.get("did") != did or raw.get("destination") != destination:
            raise StateMismatch(
                f"{path} is the state of moving {raw.get('did')} to {raw.get('destination')}, "
                f"not {did} to {destination}"
            )
        fields = {k: v for k, v in raw.items() if k not in ("version", "path", "source")}
        return cls(path=path, source=source, **fields)

    def is_done(self, step: str) -> bool:
        return step in self.done

    def mark_done(self, step: str) -> None:
        self.done[step] = time.time()
        self.save()

    def undo(self, *steps: str) -> None:
        for step in steps:
            self.done.pop(step, None)
        self.save()

    def save(self) -> None:
        """Write the state durably. It may hold an interim signing key, so it is readable by
        its owner only."""
        body = {"version": STATE_VERSION, **asdict(self)}
        body.pop("path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(body, indent=2))
