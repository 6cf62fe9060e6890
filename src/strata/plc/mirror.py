"""Mirror mode: follow other directories' `/export` and keep a verified copy of every log.

Sources are tried in order; each has its own durable cursor, because directories number their
operations independently. A source that speaks the sequenced export is paged with `after=<seq>`
and then followed live on `/export/stream`; an older one is paged by `createdAt`. Every
operation is verified here as if a client had submitted it, so a mirror never serves an
operation that its source should not have accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from prometheus_client import Counter, Gauge

from strata.core.errors import CoreError
from strata.core.plc import PlcError, operation_cid, parse_operation, validate_plc_did
from strata.net.logs import log_event
from strata.plc.directory import Directory
from strata.plc.store import Accepted, format_created_at, parse_created_at
from strata.resilience import Backoff, CircuitBreaker

log = logging.getLogger("strata.plc.mirror")

PAGE_SIZE: Final = 1000
MAX_LINE_BYTES: Final = 64 * 1024

REJECTED = Counter(
    "strata_plc_mirror_rejected_total",
    "Operations from a source that failed verification",
    ["source"],
)
SOURCE_FAILURES = Counter(
    "strata_plc_mirror_source_failures_total", "Failed reads from a mirrored directory", ["source"]
)
LAST_CREATED = Gauge(
    "strata_plc_mirror_last_created_timestamp_seconds",
    "createdAt of the newest operation copied from a source",
    ["source"],
    multiprocess_mode="livemax",
)


class SourceError(Exception):
    """A source answered with something that is not an export."""


@dataclass(frozen=True, slots=True)
class _Line:
    did: str
    operation: dict[str, Any]
    cid: str
    created_at: int
    seq: int | None


def _parse_line(obj: Any) -> _Line:
    if not isinstance(obj, dict):
        raise SourceError("export line is not an object")
    try:
        seq = obj.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
            raise SourceError("export line has an invalid seq")
        return _Line(
            did=validate_plc_did(str(obj["did"])),
            operation=obj["operation"],
            cid=str(obj["cid"]),
            created_at=parse_created_at(str(obj["createdAt"])),
            seq=seq,
        )
    except (KeyError, ValueError, PlcError) as exc:
        raise SourceError(f"malformed export line: {exc}") from exc


class Mirror:
    """Copies operations from `sources` into `directory` until cancelled."""

    def __init__(
        self,
        directory: Directory,
        sources: Sequence[str],
        session: aiohttp.ClientSession,
        poll_interval: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        self.directory = directory
        self.sources = [url.rstrip("/") for url in sources]
        self.session = session
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.breakers = {
            url: CircuitBreaker(failure_threshold=2, reset_after=10.0) for url in self.sources
        }

    async def run(self) -> None:
        """Follow the first healthy source; on failure, back off and move to the next."""
        backoff = Backoff(base=0.5, cap=30.0)
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            source = next((s for s in self.sources if self.breakers[s].allow(now)), None)
            if source is None:
                await asyncio.sleep(backoff.next_delay())
                continue
            try:
                await self._follow(source)
            except (aiohttp.ClientError, OSError, TimeoutError, SourceError) as exc:
                SOURCE_FAILURES.labels(source).inc()
                self.breakers[source].record_failure(loop.time())
                log_event(
                    log,
                    "mirror source failed",
                    logging.WARNING,
                    source=source,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
                await asyncio.sleep(backoff.next_delay())
            else:
                backoff.reset()

    async def _follow(self, source: str) -> None:
        cursor = await self.directory.store.cursor(source)
        if cursor is None:
            cursor = await self._initial_cursor(source)
        while True:
            cursor, full = await self._copy_page(source, cursor)
            self.breakers[source].record_success(asyncio.get_running_loop().time())
            if full:
                continue
            if cursor.startswith("seq:"):
                cursor = await self._stream(source, cursor)
            await asyncio.sleep(self.poll_interval)

    async def _get_lines(self, url: str) -> list[Any]:
        async with asyncio.timeout(self.timeout):
            async with self.session.get(url) as response:
                if response.status != 200:
                    raise SourceError(f"{url}: status {response.status}")
                body = await response.read()
        try:
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{url}: not JSON lines: {exc}") from exc

    async def _initial_cursor(self, source: str) -> str:
        # The sequenced format answers `after=0` with `seq` fields; an older directory reads
        # "0" as a date and answers in the legacy format.
        lines = await self._get_lines(f"{source}/export?after=0&count=1")
        if lines and isinstance(lines[0], dict) and "seq" in lines[0]:
            return "seq:0"
        return "ts:"

    async def _copy_page(self, source: str, cursor: str) -> tuple[str, bool]:
        """Copy one page after `cursor`; return the new cursor and whether the page was full."""
        kind, _, position = cursor.partition(":")
        url = f"{source}/export?count={PAGE_SIZE}"
        if position:
            url += f"&after={position}"
        lines = [_parse_line(obj) for obj in await self._get_lines(url)]
        if kind == "seq" and any(line.seq is None for line in lines):
            raise SourceError("source stopped sending sequence numbers")
        pending = []
        for line in lines:
            if kind == "seq":
                next_cursor = f"seq:{line.seq}"
            else:
                # `after` is exclusive, and operations accepted in the same millisecond may be
                # split across pages: step back one millisecond and let duplicates be skipped.
                next_cursor = f"ts:{format_created_at(line.created_at - 1)}"
            pending.append(self._apply(source, line, next_cursor))
            cursor = next_cursor
        if lines and kind == "ts" and cursor == f"ts:{position}":
            cursor = f"ts:{format_created_at(lines[-1].created_at)}"
        await asyncio.gather(*pending)
        if lines:
            LAST_CREATED.labels(source).set(lines[-1].created_at / 1000)
        return cursor, len(lines) >= PAGE_SIZE

    def _apply(self, source: str, line: _Line, cursor: str) -> asyncio.Task[None]:
        # Queued synchronously, so the writer sees operations and cursors in export order.
        try:
            op = parse_operation(line.operation)
            if str(operation_cid(op)) != line.cid:
                raise SourceError(f"cid {line.cid} does not match the operation")
        except (CoreError, SourceError) as exc:
            self._rejected(source, line, str(exc))
            stored = self.directory.skip(source, cursor)
        else:
            stored = self.directory.ingest(line.did, op, line.created_at, (source, cursor))
        return asyncio.get_running_loop().create_task(self._settle(source, line, stored))

    async def _settle(
        self, source: str, line: _Line, stored: asyncio.Future[Accepted | None]
    ) -> None:
        try:
            await stored
        except PlcError as exc:
            self._rejected(source, line, str(exc))

    def _rejected(self, source: str, line: _Line, reason: str) -> None:
        REJECTED.labels(source).inc()
        log_event(
            log,
            "mirrored operation rejected",
            logging.WARNING,
            source=source,
            did=line.did,
            cid=line.cid,
            reason=reason[:300],
        )

    async def _stream(self, source: str, cursor: str) -> str:
        """Follow `/export/stream` from `cursor` until it closes; return the cursor reached."""
        url = f"{source}/export/stream?cursor={cursor.removeprefix('seq:')}"
        try:
            async with self.session.ws_connect(
                url, heartbeat=30, max_msg_size=MAX_LINE_BYTES
            ) as ws:
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    try:
                        line = _parse_line(json.loads(message.data))
                    except json.JSONDecodeError as exc:
                        raise SourceError(f"stream message is not JSON: {exc}") from exc
                    if line.seq is None:
                        raise SourceError("stream message without seq")
                    cursor = f"seq:{line.seq}"
                    await self._apply(source, line, cursor)
                    LAST_CREATED.labels(source).set(line.created_at / 1000)
                if ws.close_code not in (None, 1000):
                    log_event(
                        log, "mirror stream closed", logging.INFO, source=source, code=ws.close_code
                    )
        except aiohttp.WSServerHandshakeError:
            # No stream at this source: paging alone keeps up.
            pass
        return cursor
