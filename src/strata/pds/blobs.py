"""Blobs on disk, addressed by their CID (raw codec, sha-256).

An upload lands in a temporary file; it becomes permanent, under the account's folder, when a
committed record first references it. Files are written to a temporary name and renamed, so a
crash never leaves a half-written blob under its CID. An upload no record has referenced after
`UPLOAD_TTL` seconds is deleted.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strata.core.cid import CID

UPLOAD_TTL: Final = 6 * 3600.0
"""How long an upload waits for a record to reference it (the official app posts at once; a
video service writes back within minutes)."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class BlobTooLarge(Exception):
    """The upload is over the configured limit."""


@dataclass(frozen=True, slots=True)
class Upload:
    cid: CID
    size: int
    mime_type: str
    temp_key: str


def sniff_mime(head: bytes, declared: str | None) -> str:
    """The MIME type of a blob: recognised from its first bytes, else as the client declared."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if declared and declared != "*/*" and "/" in declared:
        return declared.split(";", 1)[0].strip().lower()
    return "application/octet-stream"


class BlobStore:
    """The blob folders under one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _permanent(self, did: str, cid: str) -> Path:
        return self.root / "accounts" / did / cid

    async def receive(
        self, did: str, chunks: AsyncIterator[bytes], declared_mime: str | None, max_bytes: int
    ) -> Upload:
        """Stream an upload by `did` to a temporary file; raises `BlobTooLarge` past
        `max_bytes`."""
        # Under the account's own folder, so that an expired upload can be forgotten by it.
        key = f"{did}/{secrets.token_hex(16)}"
        path = self.tmp / key
        path.parent.mkdir(exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with path.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(f"blob is over the limit of {max_bytes} bytes")
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        cid = CID.raw_from_digest(digest.digest())
        return Upload(cid, size, sniff_mime(head, declared_mime), key)

    def make_permanent(self, did: str, cid: str, temp_key: str) -> None:
        """Move an uploaded blob under its account (durably); a no-op if already there."""
        target = self._permanent(did, cid)
        source = self.tmp / temp_key
        if target.exists():
            source.unlink(missing_ok=True)
            return
        if not source.exists():
            raise FileNotFoundError(f"uploaded blob {cid} is no longer in the temporary folder")
        if not target.parent.exists():
            target.parent.mkdir(parents=True)
            _fsync_directory(target.parent.parent)
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, target)
        # The rename is durable only once the directory holding the new name is.
        _fsync_directory(target.parent)

    def discard_upload(self, temp_key: str) -> None:
        """Drop an upload that duplicates a blob the account already holds."""
        (self.tmp / temp_key).unlink(missing_ok=True)

    def expired_uploads(self, before: float) -> list[tuple[str | None, str]]:
        """The uploads last written before `before` (epoch seconds): (the uploader's DID, or
        None for an upload from before uploads were kept per account; the temporary key)."""
        found: list[tuple[str | None, str]] = []
        for entry in self.tmp.iterdir():
            if entry.is_dir():
                found += [
                    (entry.name, f"{entry.name}/{upload.name}")
                    for upload in entry.iterdir()
                    if upload.stat().st_mtime < before
                ]
            elif entry.stat().st_mtime < before:
                found.append((None, entry.name))
        return found

    def path(self, did: str, cid: str) -> Path | None:
        """The file of a permanent blob, if present."""
        target = self._permanent(did, cid)
        return target if target.exists() else None

    def delete(self, did: str, cid: str) -> None:
        self._permanent(did, cid).unlink(missing_ok=True)

    def delete_account(self, did: str) -> None:
        shutil.rmtree(self.root / "accounts" / did, ignore_errors=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
