"""Event-stream frames: the binary messages of an XRPC subscription such as `subscribeRepos`.

A frame is two DAG-CBOR objects back to back: a header (`{op: 1, t: "#commit"}` for a message,
`{op: -1}` for an error that ends the stream) and a body. Services encode a frame once and send
the same bytes to every consumer; `websocket_message` goes one step further and prebuilds the
WebSocket framing, which a server sends unmasked and therefore identically to everyone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from strata.core import cbor
from strata.core.errors import CoreError, DecodeError


class FrameError(CoreError):
    """A frame that is not a header and a body, both DAG-CBOR maps."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: `op` 1 with a message type `t`, or `op` -1 (an error)."""

    op: int
    t: str | None
    body: dict[str, Any]


def message_frame(event_type: str, body: dict[str, Any]) -> bytes:
    """A message frame: header `{op: 1, t}` then the body."""
    return cbor.encode({"t": event_type, "op": 1}) + cbor.encode(body)


def error_frame(error: str, message: str) -> bytes:
    """An error frame (`op: -1`); the stream ends after it."""
    return cbor.encode({"op": -1}) + cbor.encode({"error": error, "message": message})


def info_frame(name: str, message: str) -> bytes:
    """An `#info` message, for example `OutdatedCursor`."""
    return message_frame("#info", {"name": name, "message": message})


def decode_frame(data: bytes) -> Frame:
    """Split and decode a frame; raise `FrameError` if it is not a well-formed one."""
    try:
        header, body = cbor.decode_pair(data)
    except DecodeError as exc:
        raise FrameError(f"frame is not two DAG-CBOR objects: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(body, dict):
        raise FrameError("frame header and body must be maps")
    op, t = header.get("op"), header.get("t")
    if op == 1 and isinstance(t, str):
        return Frame(1, t, body)
    if op == -1:
        return Frame(-1, None, body)
    raise FrameError(f"frame header has op {op!r} and type {t!r}")


def websocket_message(payload: bytes) -> bytes:
    """`payload` as one complete, unmasked binary WebSocket frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x82, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x82, 126, size)
    else:
        head = struct.pack("!BBQ", 0x82, 127, size)
    return head + payload
