"""The feed generator's index, as numbered migrations (see `strata.database.migrate`).

Only what feeds need is kept: no record bodies. Times are milliseconds since the epoch.
`sort_at` is the earlier of a record's own `createdAt` and when it was indexed (as the
reference AppView does, so that a post dated in the future cannot pin itself to the top of a
feed); `indexed_at` is when this feed generator saw it, which lets a ranking be recomputed
exactly as it stood at an earlier moment.

These tables are part of the interface offered to custom algorithms (`strata.feedgen.algorithm`):

- `post (uri, cid, author, sort_at, indexed_at, is_reply, reply_root, reply_parent)`
- `post_lang (uri, lang, sort_at)`: one row per language a post declares, lower-cased, and one
  for its primary subtag (`pt-br` also gives `pt`)
- `likes (uri, creator, subject, indexed_at)` and `repost (uri, creator, subject, sort_at,
  indexed_at)`, where `subject` is the at:// URI of the post
- `follow (uri, creator, subject)`: `creator` follows the DID `subject`
"""

from __future__ import annotations

from typing import Final

V1: Final = """
CREATE TABLE post (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    author TEXT NOT NULL,
    sort_at INTEGER NOT NULL,
    indexed_at INTEGER NOT NULL,
    is_reply INTEGER NOT NULL,
    reply_root TEXT,
    reply_parent TEXT
) STRICT;
CREATE INDEX post_author ON post (author, sort_at);
CREATE INDEX post_recent ON post (sort_at, uri);

CREATE TABLE post_lang (
    uri TEXT NOT NULL,
    lang TEXT NOT NULL,
    sort_at INTEGER NOT NULL,
    PRIMARY KEY (uri, lang)
) STRICT;
CREATE INDEX post_lang_recent ON post_lang (lang, sort_at, uri);

CREATE TABLE likes (
    uri TEXT PRIMARY KEY,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    indexed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX likes_subject ON likes (subject, indexed_at);
CREATE INDEX likes_creator ON likes (creator);

CREATE TABLE repost (
    uri TEXT PRIMARY KEY,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    sort_at INTEGER NOT NULL,
    indexed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX repost_subject ON repost (subject, indexed_at);
CREATE INDEX repost_creator ON repost (creator, sort_at);

CREATE TABLE follow (
    uri TEXT PRIMARY KEY,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL
) STRICT;
CREATE INDEX follow_creator ON follow (creator, subject);

CREATE TABLE repo (
    did TEXT PRIMARY KEY,
    rev TEXT NOT NULL
) STRICT;

CREATE TABLE relay_cursor (
    relay TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) STRICT
"""

MIGRATIONS: Final = (V1,)

TABLES: Final = {
    "app.bsky.feed.post": "post",
    "app.bsky.feed.like": "likes",
    "app.bsky.feed.repost": "repost",
    "app.bsky.graph.follow": "follow",
}
"""The collections indexed, and the table each goes to."""
