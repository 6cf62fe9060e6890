"""The demo network's building blocks: rich-text facets and images."""

from __future__ import annotations

import struct
import zlib

from strata.node.demo import facets, png


def test_facets_use_utf8_byte_offsets() -> None:
    text = "Grüße @bob.test, see https://example.com/a. And @nobody.test."
    found = facets(text, {"bob.test": "did:plc:bob"})
    encoded = text.encode()
    spans = [encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in found]
    assert spans == ["@bob.test", "https://example.com/a"]
    assert found[0]["features"] == [
        {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:bob"}
    ]
    assert found[1]["features"][0]["uri"] == "https://example.com/a"


def test_png_is_a_valid_image() -> None:
    data = png(3, 2, lambda x, y: (x * 80, y * 100, 7))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    _, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and struct.unpack(">II", data[16:24]) == (3, 2)
    idat = data.index(b"IDAT")
    size = struct.unpack(">I", data[idat - 4 : idat])[0]
    rows = zlib.decompress(data[idat + 4 : idat + 4 + size])
    assert rows == b"\x00" + bytes([0, 0, 7, 80, 0, 7, 160, 0, 7]) + b"\x00" + bytes(
        [0, 100, 7, 80, 100, 7, 160, 100, 7]
    )
