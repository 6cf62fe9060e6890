"""The labeler as a running service: its key, its store and its stream of labels."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from prometheus_client import Counter

from strata.core.crypto import K256Keypair
from strata.core.label import new_label, sign_label
from strata.labeler.store import LabelerStore
from strata.net.firehose import Broadcaster
from strata.net.logs import log_event
from strata.pds.sequencer import iso_now
from strata.storage import write_private

log = logging.getLogger("strata.labeler")

SECRETS_FILE: Final = "secrets.json"
LABELS = Counter("strata_labeler_labels_total", "Labels emitted", ["kind"])
REPORTS = Counter("strata_labeler_reports_total", "Reports received", ["reason_type"])


@dataclass(frozen=True)
class LabelerSecrets:
    """Generated on first start: the key labels are signed with, and the operator's password."""

    signing_key: K256Keypair
    admin_password: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> LabelerSecrets:
        path = data_dir / SECRETS_FILE
        if path.exists():
            raw = json.loads(path.read_text())
            return cls(
                K256Keypair.from_private_bytes(bytes.fromhex(raw["signing_key"])),
                raw["admin_password"],
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        made = cls(K256Keypair.generate(), secrets.token_urlsafe(18))
        body = {"signing_key": made.signing_key.private_bytes().hex(),
                "admin_password": made.admin_password}  # fmt: skip
        write_private(path, json.dumps(body, indent=2))
        return made


class Labeler:
    """Signs labels as `did`, keeps them, and publishes each once it is on disk."""

    def __init__(self, did: str, data_dir: Path) -> None:
        self.did = did
        self.secrets = LabelerSecrets.load_or_create(data_dir)
        self.store = LabelerStore(data_dir / "labeler.sqlite")
        self.broadcaster = Broadcaster()
        self._last_seq = self.store.last_seq()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    async def oldest_seq(self) -> int | None:
        return self.store.oldest_seq()

    async def replay(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return self.store.replay(after, limit)

    def label(
        self, uri: str, val: str, cid: str | None = None, neg: bool = False,
        exp: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Emit a label (or, with `neg`, take one back); returns the signed label."""
        label = sign_label(
            new_label(self.did, uri, val, iso_now(), cid=cid, neg=neg, exp=exp),
            self.secrets.signing_key,
        )
        seq, frame = self.store.add_label(label)
        self._last_seq = seq
        self.broadcaster.publish([(seq, frame)])
        LABELS.labels("negation" if neg else "label").inc()
        log_event(log, "label emitted", uri=uri, val=val, neg=neg, seq=seq)
        return label

    def report(
        self, reason_type: str, reason: str | None, subject: dict[str, Any], reporter: str
    ) -> dict[str, Any]:
        """Keep a report; returns it as `createReport` answers."""
        created = iso_now()
        report_id = self.store.add_report(reason_type, reason, subject, reporter, created)
        REPORTS.labels(reason_type.rpartition("#")[2] or "other").inc()
        log_event(log, "report received", id=report_id, reason_type=reason_type, by=reporter)
        body: dict[str, Any] = {"id": report_id, "reasonType": reason_type, "subject": subject,
                                "reportedBy": reporter, "createdAt": created}  # fmt: skip
        if reason is not None:
            body["reason"] = reason
        return body
