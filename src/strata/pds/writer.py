"""Repository writes: checking requested changes, committing them, announcing the commit.

A batch of writes becomes one signed commit. The account's store receives the new blocks, the
record index and the blob links in one transaction; the firehose event and the new root follow
in the service database. Both commits are durable before the caller is answered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from strata.core.cid import CID
from strata.core.errors import CommitError, CoreError, LexiconError
from strata.core.lexicon import Catalog
from strata.core.repo import CommitResult, Repository, Write
from strata.core.syntax import next_tid, validate_nsid, validate_record_key
from strata.net.errors import XrpcError, invalid_request
from strata.net.logs import log_event
from strata.pds.actor_store import ActorStore, ActorStores, BlobRow
from strata.pds.blobs import BlobStore
from strata.pds.sequencer import Sequencer

log = logging.getLogger("strata.pds.writer")

ValidationStatus = Literal["valid", "unknown"]


class _Unset:
    """No compare-and-swap requested (distinct from a swap against "no record": None)."""


UNSET = _Unset()


@dataclass(frozen=True, slots=True)
class BlobRef:
    cid: CID
    mime_type: str
    size: int | None


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A write that passed its checks: record validated, key chosen, blobs found."""

    action: Literal["create", "update", "delete"]
    collection: str
    rkey: str
    record: dict[str, Any] | None = None
    swap: CID | _Unset | None = UNSET
    blobs: tuple[BlobRef, ...] = ()
    validation: ValidationStatus | None = None

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.rkey}"


def repo_not_found(did: str) -> XrpcError:
    return XrpcError(400, "RepoNotFound", f"Could not find repo for DID: {did}")


def invalid_swap(message: str) -> XrpcError:
    return XrpcError(400, "InvalidSwap", message)


def find_blobs(value: Any) -> Iterator[BlobRef]:
    """Every blob reference inside a record (in the data model)."""
    if isinstance(value, dict):
        if value.get("$type") == "blob" and isinstance(value.get("ref"), CID):
            size = value.get("size")
            yield BlobRef(
                value["ref"],
                str(value.get("mimeType", "")),
                size if isinstance(size, int) else None,
            )
            return
        for item in value.values():
            yield from find_blobs(item)
    elif isinstance(value, list):
        for item in value:
            yield from find_blobs(item)


def _checked_names(collection: str, rkey: str | None) -> None:
    try:
        validate_nsid(collection)
        if rkey is not None:
            validate_record_key(rkey)
    except CoreError as exc:
        raise invalid_request(str(exc)) from exc


def prepare_record_write(
    catalog: Catalog,
    action: Literal["create", "update"],
    collection: str,
    rkey: str | None,
    record: Any,
    validate: bool | None,
    swap: CID | _Unset | None = UNSET,
) -> PreparedWrite:
    """Check a create or update: the record's type, its lexicon, its key."""
    _checked_names(collection, rkey)
    if not isinstance(record, dict):
        raise invalid_request("record must be an object")
    record = dict(record)
    record.setdefault("$type", collection)
    if record["$type"] != collection:
        raise invalid_request(f"Invalid $type: expected {collection}, got {record['$type']}")
    rkey = rkey or next_tid()
    status: ValidationStatus | None = None
    if validate is not False:
        known = catalog.document(collection) is not None
        if not known and validate:
            raise invalid_request(f"Lexicon not found: lex:{collection}")
        if known:
            try:
                catalog.validate_record(collection, record, rkey=rkey)
            except LexiconError as exc:
                raise invalid_request(f"Invalid {collection} record: {exc}") from exc
            status = "valid"
        else:
            status = "unknown"
    return PreparedWrite(action, collection, rkey, record, swap, tuple(find_blobs(record)), status)


def prepare_delete(collection: str, rkey: str, swap: CID | _Unset | None = UNSET) -> PreparedWrite:
    _checked_names(collection, rkey)
    return PreparedWrite("delete", collection, rkey, swap=swap)


@dataclass
class Applied:
    """A committed batch."""

    result: CommitResult
    cids: dict[str, CID]
    """The new record CID of each created or updated path."""


class RepoWriter:
    """Applies writes to accounts' repositories.

    Everything between reading the current commit and sequencing the new one runs without
    yielding to the event loop, so writes to one account are serialised without a lock.
    """

    def __init__(self, stores: ActorStores, blobs: BlobStore, sequencer: Sequencer) -> None:
        self.stores = stores
        self.blobs = blobs
        self.sequencer = sequencer

    def _check_swaps(
        self, repo: Repository, writes: list[PreparedWrite], swap_commit: CID | None
    ) -> None:
        if swap_commit is not None and repo.commit_cid != swap_commit:
            raise invalid_swap(f"Commit was at {repo.commit_cid}")
        for write in writes:
            if isinstance(write.swap, _Unset):
                continue
            current = repo.tree.get(write.path)
            if current != write.swap:
                raise invalid_swap(f"Record was at {current}")

    def _check_blobs(self, store: ActorStore, writes: list[PreparedWrite]) -> dict[str, BlobRow]:
        """The stored blob of every reference, checked against what the record declares."""
        rows: dict[str, BlobRow] = {}
        for write in writes:
            for ref in write.blobs:
                row = store.blob(str(ref.cid))
                if row is None:
                    raise XrpcError(400, "BlobNotFound", f"Could not find blob: {ref.cid}")
                if ref.mime_type and ref.mime_type != row.mime_type:
                    raise invalid_request(
                        f"Referenced Mimetype does not match stored blob. Expected: "
                        f"{row.mime_type}, Got: {ref.mime_type}"
                    )
                if ref.size is not None and ref.size != row.size:
                    raise invalid_request(
                        f"Referenced size does not match stored blob. Expected: {row.size}, "
                        f"Got: {ref.size}"
                    )
                rows[row.cid] = row
        return rows

    def apply(
        self, did: str, writes: list[PreparedWrite], swap_commit: CID | None = None
    ) -> Applied:
        """Commit `writes` to `did`'s repository as one commit and sequence it."""
        store = self.stores.open(did)
        repo = store.repo()
        if repo is None:
            raise repo_not_found(did)
        self._check_swaps(repo, writes, swap_commit)
        held = self._check_blobs(store, writes)
        try:
            result = repo.apply_writes(
                [Write(w.action, w.collection, w.rkey, w.record) for w in writes], store.keypair()
            )
        except CommitError as exc:
            store.blocks.pending.clear()
            raise invalid_request(str(exc)) from exc

        cids = {op.path: op.cid for op in result.ops if op.cid is not None}
        with store.transaction() as conn:
            unlinked: list[str] = []
            for write in writes:
                if write.action == "delete":
                    store.unindex_record(conn, write.collection, write.rkey)
                else:
                    store.index_record(
                        conn, write.collection, write.rkey, cids[write.path], result.commit.rev
                    )
                if write.action != "create":
                    unlinked += store.unlink_blobs(conn, write.path)
            for row in held.values():
                if row.temp_key is not None:
                    self.blobs.make_permanent(did, row.cid, row.temp_key)
                    store.mark_permanent(conn, row.cid)
            for write in writes:
                for ref in write.blobs:
                    store.link_blob(conn, str(ref.cid), write.path)
            orphans = store.drop_unused_blobs(conn, unlinked)
            # A replaced record's block stays while another path holds the same content.
            replaced = {op.prev for op in result.ops if op.prev is not None}
            removed = {
                cid
                for cid in result.removed_blocks
                if cid not in replaced or not store.cid_in_use(conn, cid)
            }
            store.save_commit(conn, result.repo, removed)
        for cid in orphans:
            self.blobs.delete(did, cid)
        new_blobs = [ref.cid for w in writes for ref in w.blobs]
        seq = self.sequencer.commit(did, result, new_blobs)
        log_event(log, "commit", logging.DEBUG, did=did, rev=result.commit.rev, seq=seq)
        return Applied(result, cids)

    def create_repo(self, did: str, store: ActorStore) -> CommitResult:
        """The first, empty commit of a new account's repository."""
        result = Repository.create(store.blocks, did, store.keypair())
        with store.transaction() as conn:
            store.save_commit(conn, result.repo, ())
        return result
