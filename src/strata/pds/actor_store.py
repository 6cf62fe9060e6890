"""One SQLite store per account: repository blocks, the record index, blobs, preferences, key.

Keeping each account in its own file means an account can be exported, moved or deleted as a
unit, and an idle account costs nothing but disk: stores are opened on demand and the least
recently used ones are closed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from strata.core.cid import CID
from strata.core.crypto import K256Keypair, Keypair
from strata.core.repo import Repository
from strata.pds.accounts import now_ms
from strata.storage import connect_sqlite, transaction

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS repo_root (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cid TEXT NOT NULL,
    rev TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS repo_block (
    cid BLOB PRIMARY KEY,
    repo_rev TEXT NOT NULL,
    content BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS repo_block_rev ON repo_block (repo_rev);
CREATE TABLE IF NOT EXISTS record (
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    cid TEXT NOT NULL,
    repo_rev TEXT NOT NULL,
    indexed_at INTEGER NOT NULL,
    PRIMARY KEY (collection, rkey)
) STRICT;
CREATE INDEX IF NOT EXISTS record_cid ON record (cid);
CREATE TABLE IF NOT EXISTS blob (
    cid TEXT PRIMARY KEY,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    temp_key TEXT,
    created_at INTEGER NOT NULL,
    takedown_ref TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS record_blob (
    blob_cid TEXT NOT NULL,
    record_path TEXT NOT NULL,
    PRIMARY KEY (blob_cid, record_path)
) STRICT;
CREATE INDEX IF NOT EXISTS record_blob_path ON record_blob (record_path);
CREATE TABLE IF NOT EXISTS account_pref (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS signing_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    private_key BLOB NOT NULL
) STRICT;
"""


@dataclass(frozen=True, slots=True)
class BlobRow:
    cid: str
    mime_type: str
    size: int
    temp_key: str | None
    takedown_ref: str | None


class BlockView(MutableMapping[CID, bytes]):
    """The store's blocks as a mapping; writes wait in memory until `ActorStore.save_commit`.

    A commit is computed against this view and only reaches the database inside the
    transaction that also updates the record index and the root, so a failed commit leaves
    nothing behind.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pending: dict[CID, bytes] = {}

    def __getitem__(self, cid: CID) -> bytes:
        block = self.pending.get(cid)
        if block is not None:
            return block
        row = self.conn.execute(
            "SELECT content FROM repo_block WHERE cid = ?", (cid.cid_bytes,)
        ).fetchone()
        if row is None:
            raise KeyError(cid)
        return bytes(row[0])

    def __contains__(self, cid: object) -> bool:
        if cid in self.pending:
            return True
        if not isinstance(cid, CID):
            return False
        return (
            self.conn.execute("SELECT 1 FROM repo_block WHERE cid = ?", (cid.cid_bytes,)).fetchone()
            is not None
        )

    def __setitem__(self, cid: CID, block: bytes) -> None:
        self.pending[cid] = block

    def __delitem__(self, cid: CID) -> None:
        raise NotImplementedError("blocks are removed by the commit that drops them")

    def __iter__(self) -> Iterator[CID]:
        raise NotImplementedError("a store's blocks are not enumerated through the view")

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM repo_block").fetchone()[0])


class ActorStore:
    """One account's store; every method runs on the caller's thread."""

    def __init__(self, did: str, path: Path) -> None:
        self.did = did
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect_sqlite(path)
        self.conn.executescript(SCHEMA)
        self.blocks = BlockView(self.conn)
        self._repo: Repository | None = None
        self._keypair: Keypair | None = None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction; rolled back (with pending blocks dropped) on error."""
        try:
            with transaction(self.conn) as conn:
                yield conn
        except BaseException:
            self.blocks.pending.clear()
            self._repo = None
            raise

    # Signing key

    def keypair(self) -> Keypair:
        if self._keypair is None:
            row = self.conn.execute("SELECT private_key FROM signing_key WHERE id = 1").fetchone()
            if row is None:
                raise LookupError(f"no signing key for {self.did}")
            self._keypair = K256Keypair.from_private_bytes(bytes(row[0]))
        return self._keypair

    def set_keypair(self, keypair: Keypair) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO signing_key (id, private_key) VALUES (1, ?)",
                (keypair.private_bytes(),),
            )
        self._keypair = keypair

    # Repository

    def root(self) -> tuple[CID, str] | None:
        row = self.conn.execute("SELECT cid, rev FROM repo_root WHERE id = 1").fetchone()
        return (CID.from_str(row[0]), row[1]) if row else None

    def repo(self) -> Repository | None:
        """The repository at its current commit (kept between writes)."""
        if self._repo is None:
            root = self.root()
            if root is None:
                return None
            self._repo = Repository.load(self.blocks, root[0])
        return self._repo

    def clear_repo(self, conn: sqlite3.Connection) -> None:
        """Remove the repository's blocks, record index and blob links (an import replaces
        them), inside `conn`'s transaction."""
        for table in ("repo_block", "record", "record_blob"):
            conn.execute(f"DELETE FROM {table}")

    def save_commit(
        self,
        conn: sqlite3.Connection,
        repo: Repository,
        removed: Iterable[CID],
    ) -> None:
        """Write pending blocks, drop unreachable ones and move the root, inside `conn`'s
        transaction."""
        rev = repo.rev
        conn.executemany(
            "INSERT OR IGNORE INTO repo_block (cid, repo_rev, content) VALUES (?, ?, ?)",
            [(cid.cid_bytes, rev, block) for cid, block in self.blocks.pending.items()],
        )
        conn.executemany("DELETE FROM repo_block WHERE cid = ?", [(c.cid_bytes,) for c in removed])
        conn.execute(
            "INSERT OR REPLACE INTO repo_root (id, cid, rev) VALUES (1, ?, ?)",
            (str(repo.commit_cid), rev),
        )
        self.blocks.pending.clear()
        self._repo = repo

    def blocks_since(self, since: str | None) -> Iterator[tuple[bytes, bytes]]:
        """(cid bytes, block) of every block, or of those written after revision `since`."""
        if since is None:
            cursor = self.conn.execute("SELECT cid, content FROM repo_block")
        else:
            cursor = self.conn.execute(
                "SELECT cid, content FROM repo_block WHERE repo_rev > ?", (since,)
            )
        yield from cursor

    def get_blocks(self, cids: Iterable[CID]) -> tuple[dict[CID, bytes], list[CID]]:
        """The blocks found, and the CIDs that are not in the store."""
        found: dict[CID, bytes] = {}
        missing: list[CID] = []
        for cid in cids:
            block = self.blocks.get(cid)
            if block is None:
                missing.append(cid)
            else:
                found[cid] = block
        return found, missing

    # Record index

    def index_record(
        self, conn: sqlite3.Connection, collection: str, rkey: str, cid: CID, rev: str
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO record (collection, rkey, cid, repo_rev, indexed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (collection, rkey, str(cid), rev, now_ms()),
        )

    def unindex_record(self, conn: sqlite3.Connection, collection: str, rkey: str) -> None:
        conn.execute("DELETE FROM record WHERE collection = ? AND rkey = ?", (collection, rkey))

    def record_cid(self, collection: str, rkey: str) -> str | None:
        row = self.conn.execute(
            "SELECT cid FROM record WHERE collection = ? AND rkey = ?", (collection, rkey)
        ).fetchone()
        return str(row[0]) if row else None

    def cid_in_use(self, conn: sqlite3.Connection, cid: CID) -> bool:
        """Whether some record still has this content (records with equal content share a
        block)."""
        return (
            conn.execute("SELECT 1 FROM record WHERE cid = ?", (str(cid),)).fetchone() is not None
        )

    def list_records(
        self, collection: str, limit: int, cursor: str | None, reverse: bool
    ) -> list[tuple[str, str]]:
        """(rkey, cid) of a collection's records, newest rkey first unless `reverse`."""
        order, compare = ("ASC", ">") if reverse else ("DESC", "<")
        sql = "SELECT rkey, cid FROM record WHERE collection = ?"
        args: list[Any] = [collection]
        if cursor is not None:
            sql += f" AND rkey {compare} ?"
            args.append(cursor)
        sql += f" ORDER BY rkey {order} LIMIT ?"
        args.append(limit)
        return [(r[0], r[1]) for r in self.conn.execute(sql, args).fetchall()]

    def collections(self) -> list[str]:
        return [
            r[0] for r in self.conn.execute("SELECT DISTINCT collection FROM record ORDER BY 1")
        ]

    def record_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM record").fetchone()[0])

    # Blobs

    def blob(self, cid: str) -> BlobRow | None:
        row = self.conn.execute(
            "SELECT cid, mime_type, size, temp_key, takedown_ref FROM blob WHERE cid = ?", (cid,)
        ).fetchone()
        return BlobRow(*row) if row else None

    def add_blob(self, cid: str, mime_type: str, size: int, temp_key: str) -> BlobRow:
        """Record an uploaded blob; an already permanent one stays permanent."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO blob (cid, mime_type, size, temp_key, created_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (cid) DO UPDATE SET temp_key = excluded.temp_key"
                " WHERE blob.temp_key IS NOT NULL",
                (cid, mime_type, size, temp_key, now_ms()),
            )
        row = self.blob(cid)
        assert row is not None
        return row

    def forget_upload(self, temp_key: str) -> None:
        """Forget an upload that expired before any record referenced it."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM blob WHERE temp_key = ?", (temp_key,))

    def blob_referenced(self, cid: str) -> bool:
        """Whether a record links this blob (an imported record whose blob arrives later)."""
        row = self.conn.execute("SELECT 1 FROM record_blob WHERE blob_cid = ?", (cid,)).fetchone()
        return row is not None

    def mark_permanent(self, conn: sqlite3.Connection, cid: str) -> None:
        """The blob's file has moved under the account: it is no longer a temporary upload."""
        conn.execute("UPDATE blob SET temp_key = NULL WHERE cid = ?", (cid,))

    def link_blob(self, conn: sqlite3.Connection, cid: str, record_path: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO record_blob (blob_cid, record_path) VALUES (?, ?)",
            (cid, record_path),
        )

    def unlink_blobs(self, conn: sqlite3.Connection, record_path: str) -> list[str]:
        """Drop a record's blob links; returns the blobs it linked."""
        cids = [
            r[0]
            for r in conn.execute(
                "SELECT blob_cid FROM record_blob WHERE record_path = ?", (record_path,)
            )
        ]
        conn.execute("DELETE FROM record_blob WHERE record_path = ?", (record_path,))
        return cids

    def drop_unused_blobs(self, conn: sqlite3.Connection, cids: Iterable[str]) -> list[str]:
        """Forget those of `cids` that no record links any more; returns them."""
        dropped = []
        for cid in set(cids):
            if conn.execute("SELECT 1 FROM record_blob WHERE blob_cid = ?", (cid,)).fetchone():
                continue
            conn.execute("DELETE FROM blob WHERE cid = ?", (cid,))
            dropped.append(cid)
        return dropped

    def list_blobs(self, since: str | None, limit: int, cursor: str | None) -> list[str]:
        sql = "SELECT DISTINCT b.blob_cid FROM record_blob b"
        args: list[Any] = []
        where = []
        if since is not None:
            sql += " JOIN record r ON r.collection || '/' || r.rkey = b.record_path"
            where.append("r.repo_rev > ?")
            args.append(since)
        if cursor is not None:
            where.append("b.blob_cid > ?")
            args.append(cursor)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY b.blob_cid LIMIT ?"
        args.append(limit)
        return [r[0] for r in self.conn.execute(sql, args)]

    def missing_blobs(self, limit: int, cursor: str | None) -> list[tuple[str, str]]:
        """(blob cid, record uri path) of blobs referenced by records but not held here."""
        sql = (
            "SELECT rb.blob_cid, rb.record_path FROM record_blob rb"
            " LEFT JOIN blob b ON b.cid = rb.blob_cid"
            " WHERE (b.cid IS NULL OR b.temp_key IS NOT NULL)"
        )
        args: list[Any] = []
        if cursor is not None:
            sql += " AND rb.blob_cid > ?"
            args.append(cursor)
        sql += " ORDER BY rb.blob_cid LIMIT ?"
        args.append(limit)
        return [(r[0], r[1]) for r in self.conn.execute(sql, args)]

    def blob_counts(self) -> tuple[int, int]:
        """(blobs referenced by records, blobs held)."""
        expected = self.conn.execute("SELECT count(DISTINCT blob_cid) FROM record_blob").fetchone()
        held = self.conn.execute("SELECT count(*) FROM blob WHERE temp_key IS NULL").fetchone()
        return int(expected[0]), int(held[0])

    def set_blob_takedown(self, cid: str, ref: str | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE blob SET takedown_ref = ? WHERE cid = ?", (ref, cid))

    # Preferences

    def preferences(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT value_json FROM account_pref ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def put_preferences(self, prefs: list[dict[str, Any]], namespace: str) -> None:
        """Replace every preference whose type is in `namespace` (others are kept)."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM account_pref WHERE name = ? OR name LIKE ?",
                (namespace, namespace + ".%"),
            )
            conn.executemany(
                "INSERT INTO account_pref (name, value_json) VALUES (?, ?)",
                [(p["$type"], json.dumps(p, separators=(",", ":"))) for p in prefs],
            )


def store_path(actors_dir: Path, did: str) -> Path:
    """Where an account's store lives: sharded by a hash so no directory grows too large."""
    shard = hashlib.sha256(did.encode()).hexdigest()[:2]
    return actors_dir / shard / did / "store.sqlite"


class ActorStores:
    """Opens account stores on demand and keeps the most recently used ones open."""

    def __init__(
        self,
        actors_dir: Path,
        capacity: int = 64,
        on_open: Callable[[ActorStore], None] | None = None,
    ) -> None:
        self.actors_dir = actors_dir
        self.capacity = capacity
        self.on_open = on_open
        self._open: OrderedDict[str, ActorStore] = OrderedDict()

    def open(self, did: str) -> ActorStore:
        store = self._open.get(did)
        if store is not None:
            self._open.move_to_end(did)
            return store
        store = ActorStore(did, store_path(self.actors_dir, did))
        self._open[did] = store
        if self.on_open is not None:
            self.on_open(store)
        while len(self._open) > self.capacity:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return store

    def create(self, did: str, keypair: Keypair) -> ActorStore:
        store = self.open(did)
        store.set_keypair(keypair)
        return store

    def release(self, did: str) -> None:
        """Close an account's store now (it reopens on next use): a new account is idle until
        its owner signs in, and should cost nothing meanwhile."""
        store = self._open.pop(did, None)
        if store is not None:
            store.close()

    def destroy(self, did: str) -> None:
        """Close and delete an account's store."""
        self.release(did)
        shutil.rmtree(store_path(self.actors_dir, did).parent, ignore_errors=True)

    def close(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()
