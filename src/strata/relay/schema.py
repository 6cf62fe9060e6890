"""The relay's tables, as numbered migrations (see `strata.database.migrate`).

`relay_seq.seq` is the relay's own sequence number, given by the database when a batch is
committed (one more than the highest so far), so sequence numbers follow commit order. A relay
that predates these migrations has the same tables already (hence `IF NOT EXISTS`).
"""

from __future__ import annotations

from typing import Final

from strata.database import Migration

V1: Final = """
CREATE TABLE IF NOT EXISTS host (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL UNIQUE,
    no_ssl INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'pds',
    status TEXT NOT NULL DEFAULT 'active',
    account_limit INTEGER NOT NULL,
    trusted INTEGER NOT NULL DEFAULT 0,
    lenient INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT -1,
    account_count INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS account (
    uid INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL UNIQUE,
    host_id INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    upstream_status TEXT NOT NULL DEFAULT 'active',
    rev TEXT,
    commit_cid TEXT,
    data_cid TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS relay_seq (
    seq INTEGER PRIMARY KEY,
    did TEXT NOT NULL,
    event_type TEXT NOT NULL,
    frame BLOB NOT NULL,
    sequenced_at INTEGER NOT NULL
) STRICT
"""

V2: Final = """
CREATE TABLE relay_command (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    args TEXT NOT NULL
) STRICT
"""
"""What an operator or a crawl request asked of a process that does not ingest, kept until the
ingesting process has carried it out (and deleted in the same transaction as its effect)."""

MIGRATIONS: Final[list[Migration]] = [V1, V2]
