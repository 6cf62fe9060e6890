"""The AppView's index, as numbered migrations (see `strata.database.migrate`).

Times are ISO 8601 strings in UTC with milliseconds, which sort as text. `sort_at` is the earlier
of the record's own `createdAt` and when it was indexed, as the reference AppView does, so a
record dated in the future cannot pin itself to the top of a feed.
"""

from __future__ import annotations

from typing import Final

from strata.database import PerEngine, postgres_ddl

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


COUNTERS: Final = (
    ("likes", "subject", "record_counts", "uri", "likes"),
    ("repost", "subject", "record_counts", "uri", "reposts"),
    ("post", "reply_parent", "record_counts", "uri", "replies"),
    ("post", "quote_uri", "record_counts", "uri", "quotes"),
    ("post", "creator", "actor_counts", "did", "posts"),
    ("follow", "subject", "actor_counts", "did", "followers"),
    ("follow", "creator", "actor_counts", "did", "follows"),
    ("list", "creator", "actor_counts", "did", "lists"),
    ("feed_generator", "creator", "actor_counts", "did", "feedgens"),
)
"""(table, column, counts table, its key, counter): each row of `table` counts once for the
record or account its `column` names. Triggers keep the counts, so a view reads one row
instead of counting likes, and the indexer's code stays the same on both engines."""

INDEXES: Final = """
DROP INDEX feed_item_originator;
CREATE INDEX feed_item_originator ON feed_item (originator, sort_at, uri, type, post_uri);
CREATE INDEX likes_pair ON likes (creator, subject);
DROP INDEX post_sort;
DROP INDEX post_root
"""
"""A timeline page reads feed items from the index alone; a viewer's likes of a page's posts
are found without reading all of them; posts are no longer searched in time order (the search
index is) nor by thread root, and each index costs every write."""

COUNT_TABLES: Final = """
CREATE TABLE record_counts (
    uri TEXT PRIMARY KEY,
    likes INTEGER NOT NULL DEFAULT 0,
    reposts INTEGER NOT NULL DEFAULT 0,
    replies INTEGER NOT NULL DEFAULT 0,
    quotes INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE actor_counts (
    did TEXT PRIMARY KEY,
    followers INTEGER NOT NULL DEFAULT 0,
    follows INTEGER NOT NULL DEFAULT 0,
    posts INTEGER NOT NULL DEFAULT 0,
    lists INTEGER NOT NULL DEFAULT 0,
    feedgens INTEGER NOT NULL DEFAULT 0
) STRICT
"""


def _tables(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";") if s.strip()]


Counter = tuple[str, str, str, str, str]


def _count_statements(counters: tuple[Counter, ...], row: str, engine: str) -> dict[str, list[str]]:
    """Per indexed table, the statements that keep its counters when a row is inserted
    (`row` 'new') or deleted ('old')."""
    by_table: dict[str, list[str]] = {}
    for table, column, counts, key, counter in counters:
        value = f"{row}.{column}"
        if row.lower() == "new":
            excluded = counts if engine == "postgres" else ""
            current = f"{excluded}.{counter}" if excluded else counter
            statement = (
                f"INSERT INTO {counts} ({key}, {counter}) SELECT {value}, 1 "
                f"WHERE {value} IS NOT NULL "
                f"ON CONFLICT ({key}) DO UPDATE SET {counter} = {current} + 1"
            )
        else:
            statement = f"UPDATE {counts} SET {counter} = {counter} - 1 WHERE {key} = {value}"
        by_table.setdefault(table, []).append(statement)
    return by_table


def _backfill_counts(counters: tuple[Counter, ...]) -> list[str]:
    """The counters of rows indexed before the counts existed."""
    statements = []
    for table, column, counts, key, counter in counters:
        statements.append(
            f"INSERT INTO {counts} ({key}, {counter}) SELECT {column}, count(*) FROM {table} "
            f"WHERE {column} IS NOT NULL GROUP BY {column} "
            f"ON CONFLICT ({key}) DO UPDATE SET {counter} = excluded.{counter}"
        )
    return statements


def _sqlite_count_triggers(counters: tuple[Counter, ...]) -> list[str]:
    statements = []
    for event, row in (("INSERT", "new"), ("DELETE", "old")):
        for table, body in _count_statements(counters, row, "sqlite").items():
            statements.append(
                f"CREATE TRIGGER {table}_counts_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN {'; '.join(body)}; END"
            )
    return statements


def _postgres_count_triggers(counters: tuple[Counter, ...]) -> list[str]:
    inserted = _count_statements(counters, "NEW", "postgres")
    deleted = _count_statements(counters, "OLD", "postgres")
    statements = []
    for table in inserted:
        statements.append(
            f"CREATE FUNCTION {table}_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'INSERT' THEN {'; '.join(inserted[table])}; "
            f"ELSE {'; '.join(deleted[table])}; END IF; RETURN NULL; END $$"
        )
        statements.append(
            f"CREATE TRIGGER {table}_counts AFTER INSERT OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_counts()"
        )
    return statements


SEARCH_TOKENS_SQL: Final = "regexp_replace({}, '[^[:alnum:]]+', ' ', 'g')"
"""Postgres splits text into runs of letters and digits, as SQLite's `unicode61` tokenizer does,
so that both engines find the same words (its own parser would keep `alice.test` whole)."""

SQLITE_SEARCH: Final = (
    # Post text: a contentless index (the text is in `post`), its rows numbered by
    # `post_search_doc`, in the order posts are indexed.
    "CREATE TABLE post_search_doc (id INTEGER PRIMARY KEY, uri TEXT NOT NULL UNIQUE) STRICT",
    "CREATE VIRTUAL TABLE post_search USING fts5(text, content='', "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER post_search_insert AFTER INSERT ON post BEGIN "
    "INSERT INTO post_search_doc (uri) VALUES (new.uri); "
    "INSERT INTO post_search (rowid, text) VALUES (last_insert_rowid(), new.text); END",
    "CREATE TRIGGER post_search_delete AFTER DELETE ON post BEGIN "
    "INSERT INTO post_search (post_search, rowid, text) "
    "SELECT 'delete', id, old.text FROM post_search_doc WHERE uri = old.uri; "
    "DELETE FROM post_search_doc WHERE uri = old.uri; END",
    "INSERT INTO post_search_doc (uri) SELECT uri FROM post ORDER BY sort_at, uri",
    "INSERT INTO post_search (rowid, text) "
    "SELECT d.id, p.text FROM post_search_doc d JOIN post p ON p.uri = d.uri",
    # Accounts: handle and display name.
    "CREATE TABLE actor_search_doc (id INTEGER PRIMARY KEY, did TEXT NOT NULL UNIQUE) STRICT",
    "CREATE VIRTUAL TABLE actor_search USING fts5(handle, name, "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER actor_search_insert AFTER INSERT ON actor BEGIN "
    "INSERT INTO actor_search_doc (did) VALUES (new.did); "
    "INSERT INTO actor_search (rowid, handle, name) VALUES (last_insert_rowid(), "
    "coalesce(new.handle, ''), "
    "coalesce((SELECT display_name FROM profile WHERE did = new.did), '')); END",
    "CREATE TRIGGER actor_search_handle AFTER UPDATE OF handle ON actor BEGIN "
    "UPDATE actor_search SET handle = coalesce(new.handle, '') "
    "WHERE rowid = (SELECT id FROM actor_search_doc WHERE did = new.did); END",
    "CREATE TRIGGER actor_search_name AFTER INSERT ON profile BEGIN "
    "UPDATE actor_search SET name = coalesce(new.display_name, '') "
    "WHERE rowid = (SELECT id FROM actor_search_doc WHERE did = new.did); END",
    "CREATE TRIGGER actor_search_unname AFTER DELETE ON profile BEGIN "
    "UPDATE actor_search SET name = '' "
    "WHERE rowid = (SELECT id FROM actor_search_doc WHERE did = old.did); END",
    "INSERT INTO actor_search_doc (did) SELECT did FROM actor ORDER BY indexed_at, did",
    "INSERT INTO actor_search (rowid, handle, name) "
    "SELECT d.id, coalesce(a.handle, ''), coalesce(p.display_name, '') FROM actor_search_doc d "
    "JOIN actor a ON a.did = d.did LEFT JOIN profile p ON p.did = d.did",
)

_POST_VECTOR = f"to_tsvector('simple', {SEARCH_TOKENS_SQL.format('{}.text')})"
_ACTOR_VECTOR = (
    "to_tsvector('simple', "
    + SEARCH_TOKENS_SQL.format("coalesce({0}.handle, '') || ' ' || coalesce({1}, '')")
    + ")"
)

POSTGRES_SEARCH: Final = (
    "CREATE TABLE post_search_doc (id BIGSERIAL PRIMARY KEY, uri TEXT NOT NULL UNIQUE, "
    "search TSVECTOR NOT NULL)",
    "CREATE FUNCTION post_search() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF TG_OP = 'INSERT' THEN "
    f"INSERT INTO post_search_doc (uri, search) VALUES (NEW.uri, {_POST_VECTOR.format('NEW')}); "
    "ELSE DELETE FROM post_search_doc WHERE uri = OLD.uri; END IF; RETURN NULL; END $$",
    "CREATE TRIGGER post_search AFTER INSERT OR DELETE ON post "
    "FOR EACH ROW EXECUTE FUNCTION post_search()",
    "INSERT INTO post_search_doc (uri, search) "
    f"SELECT p.uri, {_POST_VECTOR.format('p')} FROM post p ORDER BY p.sort_at, p.uri",
    "CREATE INDEX post_search_doc_search ON post_search_doc USING GIN (search)",
    "CREATE TABLE actor_search_doc (id BIGSERIAL PRIMARY KEY, did TEXT NOT NULL UNIQUE, "
    "search TSVECTOR NOT NULL)",
    "CREATE FUNCTION actor_search() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO actor_search_doc (did, search) "
    f"SELECT a.did, {_ACTOR_VECTOR.format('a', 'p.display_name')} FROM actor a "
    "LEFT JOIN profile p ON p.did = a.did WHERE a.did = coalesce(NEW.did, OLD.did) "
    "ON CONFLICT (did) DO UPDATE SET search = excluded.search; RETURN NULL; END $$",
    "CREATE TRIGGER actor_search AFTER INSERT OR UPDATE OF handle ON actor "
    "FOR EACH ROW EXECUTE FUNCTION actor_search()",
    "CREATE TRIGGER actor_search_name AFTER INSERT OR DELETE ON profile "
    "FOR EACH ROW EXECUTE FUNCTION actor_search()",
    "INSERT INTO actor_search_doc (did, search) "
    f"SELECT a.did, {_ACTOR_VECTOR.format('a', 'p.display_name')} FROM actor a "
    "LEFT JOIN profile p ON p.did = a.did ORDER BY a.indexed_at, a.did",
    "CREATE INDEX actor_search_doc_search ON actor_search_doc USING GIN (search)",
)

V2: Final = PerEngine(
    sqlite=(
        *_tables(INDEXES),
        *_tables(COUNT_TABLES),
        *_sqlite_count_triggers(COUNTERS),
        *_backfill_counts(COUNTERS),
        *SQLITE_SEARCH,
    ),
    postgres=(
        *_tables(INDEXES),
        *_tables(postgres_ddl(COUNT_TABLES)),
        *_postgres_count_triggers(COUNTERS),
        *_backfill_counts(COUNTERS),
        *POSTGRES_SEARCH,
    ),
)
"""Covering indexes for timelines, counts kept by triggers, and full-text search of posts
and accounts."""

MODERATION_TABLES: Final = """
CREATE TABLE list_block (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    subject TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX list_block_creator ON list_block (creator, sort_at);
CREATE INDEX list_block_subject ON list_block (subject);
CREATE INDEX list_item_subject ON list_item (subject, list_uri);
CREATE INDEX list_purpose ON list (creator, purpose, sort_at);

CREATE TABLE starter_pack (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    list_uri TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX starter_pack_creator ON starter_pack (creator, sort_at);

CREATE TABLE postgate (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    post_uri TEXT NOT NULL
) STRICT;
CREATE INDEX postgate_post ON postgate (post_uri);

CREATE TABLE labeler (
    uri TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    creator TEXT NOT NULL,
    sort_at TEXT NOT NULL
) STRICT;
CREATE INDEX labeler_creator ON labeler (creator);

CREATE TABLE mute (
    muter TEXT NOT NULL,
    subject TEXT NOT NULL,
    only_reposts INTEGER NOT NULL,
    only_quoteposts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (muter, subject)
) STRICT;
CREATE INDEX mute_created ON mute (muter, created_at);
CREATE TABLE list_mute (
    muter TEXT NOT NULL,
    list_uri TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (muter, list_uri)
) STRICT;
CREATE INDEX list_mute_created ON list_mute (muter, created_at);
CREATE TABLE thread_mute (
    muter TEXT NOT NULL,
    root_uri TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (muter, root_uri)
) STRICT;

CREATE TABLE label (
    src TEXT NOT NULL,
    uri TEXT NOT NULL,
    val TEXT NOT NULL,
    cid TEXT,
    neg INTEGER NOT NULL,
    cts TEXT NOT NULL,
    exp TEXT,
    sig BLOB,
    PRIMARY KEY (src, uri, val)
) STRICT;
CREATE INDEX label_uri ON label (uri);
CREATE TABLE labeler_cursor (
    src TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) STRICT;

ALTER TABLE record_counts ADD COLUMN members INTEGER NOT NULL DEFAULT 0;
ALTER TABLE actor_counts ADD COLUMN starter_packs INTEGER NOT NULL DEFAULT 0
"""
"""Lists blocked and muted, starter packs, postgates, labelers and their labels, and the
viewer's mutes (private: only the AppView holds them)."""

MODERATION_COUNTERS: Final = (
    ("list_item", "list_uri", "record_counts", "uri", "members"),
    ("starter_pack", "creator", "actor_counts", "did", "starter_packs"),
)

V3: Final = PerEngine(
    sqlite=(
        *_tables(MODERATION_TABLES),
        *_sqlite_count_triggers(MODERATION_COUNTERS),
        *_backfill_counts(MODERATION_COUNTERS),
    ),
    postgres=(
        *_tables(postgres_ddl(MODERATION_TABLES)),
        *_postgres_count_triggers(MODERATION_COUNTERS),
        *_backfill_counts(MODERATION_COUNTERS),
    ),
)

VIEWER_TABLES: Final = """
CREATE TABLE bookmark (
    creator TEXT NOT NULL,
    subject_uri TEXT NOT NULL,
    subject_cid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (creator, subject_uri)
) STRICT;
CREATE INDEX bookmark_created ON bookmark (creator, created_at, subject_uri);
ALTER TABLE record_counts ADD COLUMN bookmarks INTEGER NOT NULL DEFAULT 0;

CREATE TABLE notification_preferences (
    did TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE push_registration (
    did TEXT NOT NULL,
    platform TEXT NOT NULL,
    app_id TEXT NOT NULL,
    token TEXT NOT NULL,
    service_did TEXT NOT NULL,
    age_restricted INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (did, platform, app_id, token)
) STRICT
"""
"""What each viewer keeps in the AppView alone, as the reference keeps it apart from records:
bookmarks (counted per post), notification preferences and push registrations."""

VIEWER_COUNTERS: Final = (("bookmark", "subject_uri", "record_counts", "uri", "bookmarks"),)

V4: Final = PerEngine(
    sqlite=(*_tables(VIEWER_TABLES), *_sqlite_count_triggers(VIEWER_COUNTERS)),
    postgres=(*_tables(postgres_ddl(VIEWER_TABLES)), *_postgres_count_triggers(VIEWER_COUNTERS)),
)

MIGRATIONS: Final = (V1, V2, V3, V4)
