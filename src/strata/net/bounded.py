"""Reading a body of unknown size without holding more of it than allowed."""

from __future__ import annotations

import aiohttp


async def read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body, read until its end or until it is known to be larger than `limit` (then
    `limit + 1` bytes are returned, and the rest is left unread).

    `StreamReader.read(n)` answers with whatever has arrived, up to `n` bytes: one call can
    return a fraction of a small body, so it is called until the end."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
