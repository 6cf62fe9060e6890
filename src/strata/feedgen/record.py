"""The `app.bsky.feed.generator` record that publishes a feed: where apps find its name and
the feed generator serving it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from strata.core.lexicon import Catalog
from strata.core.syntax import format_datetime
from strata.feedgen.algorithm import Algorithm
from strata.feedgen.feeds import LanguageFeed, builtin_algorithms
from strata.feedgen.service import GENERATOR


def builtin(rkey: str) -> Algorithm | None:
    """The built-in feed with this record key, for the record's default name and description."""
    if rkey.startswith("lang-") and len(rkey) > len("lang-"):
        return LanguageFeed(rkey[len("lang-") :])
    return next((a for a in builtin_algorithms(()) if a.rkey == rkey), None)


def generator_record(
    rkey: str,
    feedgen_did: str,
    display_name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The feed's record, named after the built-in feed of that key unless names are given;
    raises `CoreError` if it would not pass the lexicon."""
    known = builtin(rkey)
    record: dict[str, Any] = {
        "$type": GENERATOR,
        "did": feedgen_did,
        "displayName": display_name or (known.display_name if known else rkey[:24]),
        "createdAt": format_datetime(dt.datetime.now(dt.UTC)),
    }
    text = description if description is not None else (known.description if known else "")
    if text:
        record["description"] = text
    Catalog.bundled().validate_record(GENERATOR, record, rkey=rkey)
    return record
