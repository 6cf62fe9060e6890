"""Bounded HTTP reads for resolution: a size cap, so a hostile host cannot exhaust memory."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from strata.net.bounded import read_at_most


class BadAnswer(Exception):
    """The source answered, but not with something usable (status, size, or format)."""


async def read_limited(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The response body, or `BadAnswer` when it is larger than `max_bytes`."""
    if response.content_length is not None and response.content_length > max_bytes:
        raise BadAnswer(f"answer of {response.content_length} bytes exceeds {max_bytes}")
    body = await read_at_most(response.content, max_bytes)
    if len(body) > max_bytes:
        raise BadAnswer(f"answer exceeds {max_bytes} bytes")
    return body


async def get_json(session: aiohttp.ClientSession, url: str, max_bytes: int) -> tuple[int, Any]:
    """GET `url`; return (status, parsed JSON) for 200, (status, None) otherwise."""
    async with session.get(url, allow_redirects=False) as response:
        if response.status != 200:
            return response.status, None
        body = await read_limited(response, max_bytes)
    try:
        return 200, json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadAnswer(f"answer is not JSON: {exc}") from exc
