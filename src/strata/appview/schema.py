"""The AppView's index, as numbered migrations (see `strata.database.migrate`).

Times are ISO 8601 strings in UTC with milliseconds, which sort as text. `sort_at` is the earlier
of the record's own `createdAt` and when it was indexed, as the reference AppView does, so a
record dated in the future cannot pin itself to the top of a feed.
"""

from __future__ import annotations

from typing import Final

V1: Final = """
CREATE TABLE actor (
    did TEXT PRIMARY KEY,
    handle TEXT,
    pds TEXT,
    rev TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    indexed_at TEXT NOT NULL
) STRICT;
CREATE INDEX actor_handle ON actor (handle);

CREATE TABLE record (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    did TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    json TEXT NOT NULL,
    indexed_at TEXT NOT NULL
) STRICT;
CREATE INDEX record_did ON record (did, collection);

CREATE TABLE profile (
    did TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    avatar_cid TEXT,
    banner_cid TEXT,
    pinned_post TEXT,
    created_at TEXT,
    indexed_at TEXT NOT NULL
) STRICT;

CREATE TABLE post (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    text TEXT NOT NULL,
    reply_root TEXT,
    reply_parent TEXT,
    quote_uri TEXT,
    media TEXT,
    langs TEXT NOT NULL,
    created_at TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX post_creator ON post (creator, sort_at);
CREATE INDEX post_parent ON post (reply_parent, sort_at);
CREATE INDEX post_root ON post (reply_root);
CREATE INDEX post_quote ON post (quote_uri);
CREATE INDEX post_sort ON post (sort_at);

CREATE TABLE feed_item (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    type TEXT NOT NULL,
    post_uri TEXT NOT NULL,
    originator TEXT NOT NULL,
    is_reply INTEGER NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX feed_item_originator ON feed_item (originator, sort_at);

CREATE TABLE likes (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_cid TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX likes_subject ON likes (subject, sort_at);
CREATE INDEX likes_creator ON likes (creator, sort_at);

CREATE TABLE repost (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_cid TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX repost_subject ON repost (subject, sort_at);
CREATE INDEX repost_creator ON repost (creator, subject);

CREATE TABLE follow (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX follow_creator ON follow (creator, sort_at);
CREATE INDEX follow_subject ON follow (subject, sort_at);
CREATE INDEX follow_pair ON follow (creator, subject);

CREATE TABLE block (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX block_creator ON block (creator, sort_at);
CREATE INDEX block_pair ON block (subject, creator);

CREATE TABLE list (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    name TEXT NOT NULL,
    purpose TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX list_creator ON list (creator);

CREATE TABLE list_item (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    list_uri TEXT NOT NULL,
    subject TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX list_item_list ON list_item (list_uri, sort_at);

CREATE TABLE feed_generator (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    feed_did TEXT NOT NULL,
    display_name TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX feed_generator_creator ON feed_generator (creator, sort_at);

CREATE TABLE threadgate (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    post_uri TEXT NOT NULL
) STRICT;
CREATE INDEX threadgate_post ON threadgate (post_uri);

CREATE TABLE notification (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    author TEXT NOT NULL,
    record_uri TEXT NOT NULL,
    record_cid TEXT NOT NULL,
    reason TEXT NOT NULL,
    reason_subject TEXT,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX notification_recipient ON notification (recipient, sort_at);
CREATE INDEX notification_record ON notification (record_uri);

CREATE TABLE seen (
    did TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
) STRICT;

CREATE TABLE relay_cursor (
    relay TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) STRICT
"""

MIGRATIONS: Final = (V1,)
