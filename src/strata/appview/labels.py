"""Labels from labelers: each labeler's `subscribeLabels` stream, read from its durable cursor,
every label's signature checked against the `#atproto_label` key of the labeler's DID document
before it is stored, and the views' form of the labels an account or record carries.

A label that does not verify (forged, or signed with another key), or that comes from a stream
it does not belong to, is refused, counted and logged; the newest label for a (labeler, subject,
value) wins, and a negation takes it back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Final

import aiohttp
from prometheus_client import Counter

from strata.appview.cache import HotCache
from strata.appview.invalidation import Announcer
from strata.core.crypto import PublicKey
from strata.core.errors import CoreError
from strata.core.frames import decode_frame
from strata.core.label import LabelError, check_label, verify_label
from strata.database import Database
from strata.identity import IdentityResolver
from strata.identity.errors import IdentityError
from strata.net.logs import log_event
from strata.resilience import Backoff

log = logging.getLogger("strata.appview.labels")

MAX_FRAME_BYTES: Final = 1 << 20
LABELS = Counter("strata_appview_labels_total", "Labels stored, by labeler", ["labeler"])
REJECTED = Counter(
    "strata_appview_labels_rejected_total", "Labels refused, and why", ["labeler", "reason"]
)

REDACT: Final = ";redact"
HEADER_MAX: Final = 20
"""Labelers a request may ask for (`atproto-accept-labelers`), as the reference allows."""


def parse_accepted(header: str | None) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The labelers named in an `atproto-accept-labelers` header, and those of them marked
    `redact`; None when there is no usable header."""
    if not header:
        return None
    dids: list[str] = []
    redacting: set[str] = set()
    for part in header.split(",")[:HEADER_MAX]:
        did, *params = (p.strip() for p in part.split(";"))
        if did.startswith("did:") and did not in dids:
            dids.append(did)
            if "redact" in params:
                redacting.add(did)
    return (tuple(dids), frozenset(redacting)) if dids else None


def content_labelers(dids: Iterable[str], redacting: frozenset[str]) -> str:
    """The `atproto-content-labelers` header: the labelers whose labels were applied."""
    return ", ".join(f"{d}{REDACT if d in redacting else ''}" for d in dids)


def label_view(src: str, uri: str, val: str, cid: str | None, cts: str) -> dict[str, Any]:
    """A label as views carry it (`com.atproto.label.defs#label`, without the signature)."""
    view: dict[str, Any] = {"ver": 1, "src": src, "uri": uri}
    if cid:
        view["cid"] = cid
    view.update({"val": val, "cts": cts})
    return view


def self_labels(record: dict[str, Any], author: str, uri: str, cid: str, at: str) -> list[Any]:
    """The labels a record puts on itself (`com.atproto.label.defs#selfLabels`)."""
    labels = record.get("labels")
    values = labels.get("values") if isinstance(labels, dict) else None
    created = record.get("createdAt")
    cts = created if isinstance(created, str) else at
    entries = values if isinstance(values, list) else []
    return [
        label_view(author, uri, entry["val"], cid, cts)
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("val"), str)
    ]


class LabelSubscriber:
    """Reads one labeler's stream into the index, for as long as it runs."""

    def __init__(
        self,
        labeler: str,
        db: Database,
        resolver: IdentityResolver,
        session: aiohttp.ClientSession,
        cache: HotCache,
        announce: Announcer | None = None,
    ) -> None:
        self.labeler = labeler
        self.db = db
        self.resolver = resolver
        self.session = session
        self.cache = cache
        self.announce = announce or Announcer(shared=False)
        """Tells other processes' caches what each transaction changed."""
        self.connected = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"labels {self.labeler}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        return {"kind": "labeler", "url": self.labeler, "inUse": self.connected,
                "state": "connected" if self.connected else "standby"}  # fmt: skip

    async def run(self) -> None:
        backoff = Backoff(base=1.0, cap=60.0)
        while True:
            try:
                await self._read(backoff)
            except (aiohttp.ClientError, OSError, TimeoutError, IdentityError, CoreError) as exc:
                log_event(
                    log, "labeler stream failed", logging.WARNING, labeler=self.labeler,
                    error=str(exc) or type(exc).__name__,
                )  # fmt: skip
            finally:
                self.connected = False
            await asyncio.sleep(backoff.next_delay())

    async def _where(self, fresh: bool = False) -> tuple[str, PublicKey]:
        """The labeler's endpoint and label key, from its DID document."""
        if fresh:
            self.resolver.forget(self.labeler)
        document = (await self.resolver.resolve_did(self.labeler)).value
        endpoint = document.service_endpoint("atproto_labeler", "AtprotoLabeler")
        key = document.verification_key("atproto_label")
        if endpoint is None or key is None:
            raise IdentityError(f"{self.labeler} names no #atproto_labeler service and label key")
        return endpoint, key

    async def _read(self, backoff: Backoff) -> None:
        endpoint, key = await self._where()
        row = await self.db.fetchrow("SELECT seq FROM labeler_cursor WHERE src = ?", self.labeler)
        cursor = int(row[0]) if row else 0
        url = endpoint.rstrip("/").replace("http", "ws", 1)
        async with self.session.ws_connect(
            f"{url}/xrpc/com.atproto.label.subscribeLabels?cursor={cursor}",
            max_msg_size=MAX_FRAME_BYTES,
            heartbeat=30.0,
        ) as ws:
            self.connected = True
            log_event(log, "labeler connected", labeler=self.labeler, cursor=cursor)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY:
                    continue
                frame = decode_frame(message.data)
                if frame.op == -1:
                    raise aiohttp.ClientError(f"error frame {frame.body.get('error')}")
                if frame.t != "#labels" or not isinstance(frame.body.get("seq"), int):
                    continue
                labels = frame.body.get("labels")
                key = await self._store(labels if isinstance(labels, list) else [], key,
                                        frame.body["seq"])  # fmt: skip
                backoff.reset()

    async def _store(self, labels: list[Any], key: PublicKey, seq: int) -> PublicKey:
        """Check and keep a frame's labels, with the stream's cursor; returns the key to check
        the next ones with."""
        kept: list[dict[str, Any]] = []
        for label in labels:
            try:
                check_label(label)
            except LabelError:
                self._refuse("malformed", label)
                continue
            if label["src"] != self.labeler:
                self._refuse("wrong-source", label)
                continue
            if not verify_label(label, key):
                # The labeler may have rotated its key since its document was read.
                _, key = await self._where(fresh=True)
                if not verify_label(label, key):
                    self._refuse("bad-signature", label)
                    continue
            kept.append(label)
        async with self.db.transaction() as tx:
            for label in kept:
                await tx.execute(
                    "INSERT INTO label (src, uri, val, cid, neg, cts, exp, sig) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (src, uri, val) DO UPDATE "
                    "SET cid = excluded.cid, neg = excluded.neg, cts = excluded.cts, "
                    "exp = excluded.exp, sig = excluded.sig WHERE excluded.cts >= label.cts",
                    label["src"], label["uri"], label["val"], label.get("cid"),
                    int(bool(label.get("neg"))), label["cts"], label.get("exp"), label["sig"],
                )  # fmt: skip
            await tx.execute(
                "INSERT INTO labeler_cursor (src, seq) VALUES (?, ?) "
                "ON CONFLICT (src) DO UPDATE SET seq = excluded.seq",
                self.labeler, seq,
            )  # fmt: skip
            await self.announce(tx, {label["uri"] for label in kept})
        if kept:
            self.cache.invalidate({label["uri"] for label in kept})
            LABELS.labels(self.labeler).inc(len(kept))
        return key

    def _refuse(self, reason: str, label: Any) -> None:
        REJECTED.labels(self.labeler, reason).inc()
        uri = label.get("uri") if isinstance(label, dict) else None
        log_event(log, "label refused", logging.WARNING, labeler=self.labeler, reason=reason,
                  uri=str(uri)[:200])  # fmt: skip
