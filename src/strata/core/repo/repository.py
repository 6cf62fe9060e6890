"""A repository: records in an MST under a signed commit, changed by batches of writes.

The repository reads and writes blocks through a `MutableMapping[CID, bytes]` that its owner
provides: a dict in memory, or a view over a database transaction in a service. Blocks are
content-addressed, so writing one twice is harmless. Each batch of writes yields a `CommitResult`
carrying what a firehose `#commit` event needs: the ops with their previous CIDs, `prevData`,
and the blocks that let a consumer verify the commit by MST inversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from strata.core import cbor
from strata.core.car import car_header, car_section, read_car
from strata.core.cid import CID
from strata.core.crypto import Keypair
from strata.core.errors import CommitError, CoreError
from strata.core.mst import MST
from strata.core.mst.diff import diff
from strata.core.mst.proof import covering_proof
from strata.core.repo.commit import Commit, sign_commit
from strata.core.syntax import (
    next_tid,
    tid_from_parts,
    tid_timestamp_micros,
    validate_did,
    validate_nsid,
    validate_record_key,
    validate_tid,
)

BlockStore = MutableMapping[CID, bytes]
Action = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Write:
    """One requested change: create or update a record with `record`, or delete it."""

    action: Action
    collection: str
    rkey: str
    record: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.rkey}"


@dataclass(frozen=True, slots=True)
class RepoOp:
    """A change as the firehose reports it: the record's new CID and the one it replaced."""

    action: Action
    path: str
    cid: CID | None
    prev: CID | None = None

    def to_event(self) -> dict[str, Any]:
        """The op as a `com.atproto.sync.subscribeRepos#repoOp` object."""
        out: dict[str, Any] = {"action": self.action, "path": self.path, "cid": self.cid}
        if self.prev is not None:
            out["prev"] = self.prev
        return out


@dataclass(slots=True)
class CommitResult:
    """Everything a commit produced."""

    repo: Repository
    commit: Commit
    cid: CID
    since: str | None
    prev_data: CID | None
    ops: list[RepoOp]
    new_blocks: dict[CID, bytes] = field(default_factory=dict)
    """Blocks this commit wrote: the commit, new records and new MST nodes."""
    event_blocks: dict[CID, bytes] = field(default_factory=dict)
    """Blocks for the `#commit` event: the commit, new records, and the MST nodes that prove
    every op (new nodes plus each key's covering proof), enough to verify by inversion."""
    removed_blocks: set[CID] = field(default_factory=set)
    """Blocks the new commit no longer reaches: the previous commit, MST nodes that left the
    tree, and the records that were replaced or deleted (a store must still keep a record
    block that another path holds with the same content)."""


def _next_rev(previous: str | None, rev: str | None) -> str:
    """A revision after `previous`: the clock's, or one microsecond later if the clock lags."""
    try:
        candidate = validate_tid(rev) if rev is not None else next_tid()
    except CoreError as exc:
        raise CommitError(f"invalid rev {rev!r}: {exc}") from exc
    if previous is not None and candidate <= previous:
        candidate = tid_from_parts(tid_timestamp_micros(previous) + 1, 0)
    return candidate


class Repository:
    """A repository at one commit. Writing returns a new `Repository`; this one is unchanged."""

    __slots__ = ("commit", "commit_cid", "store", "tree")

    def __init__(self, store: BlockStore, commit: Commit, commit_cid: CID, tree: MST) -> None:
        self.store = store
        self.commit = commit
        self.commit_cid = commit_cid
        self.tree = tree

    @property
    def did(self) -> str:
        return self.commit.did

    @property
    def rev(self) -> str:
        return self.commit.rev

    @classmethod
    def create(
        cls,
        store: BlockStore,
        did: str,
        keypair: Keypair,
        writes: Iterable[Write] = (),
        rev: str | None = None,
    ) -> CommitResult:
        """A new repository, empty or holding `writes`, with its first commit."""
        try:
            validate_did(did)
        except CoreError as exc:
            raise CommitError(f"invalid repository DID: {exc}") from exc
        empty = MST.empty(store)
        genesis = cls(store, Commit(did=did, data=empty.root, rev="", sig=b""), empty.root, empty)
        return genesis._commit(list(writes), keypair, rev, since=None, prev_data=None)

    @classmethod
    def load(cls, store: BlockStore, commit_cid: CID) -> Repository:
        """The repository whose commit block `commit_cid` is in `store`."""
        block = store.get(commit_cid)
        if block is None:
            raise CommitError(f"commit block {commit_cid} is missing")
        commit = Commit.decode(block)
        return cls(store, commit, commit_cid, MST.load(store, commit.data))

    def get_record(self, collection: str, rkey: str) -> tuple[CID, dict[str, Any]] | None:
        """A record's CID and value, or None."""
        cid = self.tree.get(f"{collection}/{rkey}")
        if cid is None:
            return None
        return cid, self.read_block(cid)

    def read_block(self, cid: CID) -> Any:
        """Decode a block of this repository."""
        block = self.store.get(cid)
        if block is None:
            raise CommitError(f"block {cid} is missing from the repository")
        return cbor.decode(block)

    def records(self, collection: str | None = None) -> Iterator[tuple[str, CID]]:
        """(path, CID) of every record, or of one collection's, in path order."""
        if collection is None:
            yield from self.tree.items()
            return
        prefix = collection + "/"
        for path, cid in self.tree.items_from(prefix):
            if not path.startswith(prefix):
                return
            yield path, cid

    def apply_writes(
        self, writes: Iterable[Write], keypair: Keypair, rev: str | None = None
    ) -> CommitResult:
        """Apply a batch of writes as one signed commit."""
        return self._commit(list(writes), keypair, rev, since=self.rev, prev_data=self.tree.root)

    def _commit(
        self,
        writes: list[Write],
        keypair: Keypair,
        rev: str | None,
        since: str | None,
        prev_data: CID | None,
    ) -> CommitResult:
        tree = self.tree
        ops: list[RepoOp] = []
        records: dict[CID, bytes] = {}
        seen: set[str] = set()
        for write in writes:
            path = _checked_path(write)
            if path in seen:
                raise CommitError(f"{path} is written more than once in one commit")
            seen.add(path)
            existing = tree.get(path)
            if write.action == "delete":
                if existing is None:
                    raise CommitError(f"cannot delete {path}: no such record")
                tree = tree.delete(path)
                ops.append(RepoOp("delete", path, None, existing))
                continue
            if write.action == "create" and existing is not None:
                raise CommitError(f"cannot create {path}: the record already exists")
            if write.action == "update" and existing is None:
                raise CommitError(f"cannot update {path}: no such record")
            if not isinstance(write.record, dict):
                raise CommitError(f"{write.action} of {path} needs a record object")
            cid, block = cbor.encode_with_cid(write.record)
            records[cid] = block
            tree = tree.put(path, cid)
            ops.append(RepoOp(write.action, path, cid, existing))

        new_nodes = dict(tree.new_blocks())
        commit = sign_commit(self.did, tree.root, _next_rev(since, rev), keypair)
        commit_cid, commit_block = commit.encode()
        new_blocks = {commit_cid: commit_block, **records, **new_nodes}

        changes = diff(self.tree, tree)
        # The root always travels, so that even a commit without ops can be checked.
        proof: set[CID] = {tree.root, *changes.created_nodes}
        for op in ops:
            proof |= covering_proof(tree, op.path)
        event_blocks = {commit_cid: commit_block, **records}
        for cid in proof:
            event_blocks[cid] = new_nodes[cid] if cid in new_nodes else self.store[cid]

        self.store.update(new_blocks)
        repo = Repository(self.store, commit, commit_cid, MST.load(self.store, tree.root))
        return CommitResult(
            repo=repo,
            commit=commit,
            cid=commit_cid,
            since=since,
            prev_data=prev_data,
            ops=ops,
            new_blocks=new_blocks,
            event_blocks=event_blocks,
            removed_blocks=_removed(self, changes.deleted_nodes, ops) - new_blocks.keys(),
        )


def _removed(before: Repository, deleted_nodes: set[CID], ops: list[RepoOp]) -> set[CID]:
    removed = set(deleted_nodes)
    if before.commit.sig:
        removed.add(before.commit_cid)
    removed.update(op.prev for op in ops if op.prev is not None)
    return removed


def _checked_path(write: Write) -> str:
    try:
        validate_nsid(write.collection)
        validate_record_key(write.rkey)
    except CoreError as exc:
        raise CommitError(f"invalid record path {write.path!r}: {exc}") from exc
    return write.path


def repo_blocks(repo: Repository) -> Iterator[tuple[CID, bytes]]:
    """Every block the repository's commit reaches: the commit, MST nodes, then records."""
    yield repo.commit_cid, repo.store[repo.commit_cid]
    seen: set[CID] = set()
    for node in repo.tree.nodes():
        yield node.cid, node.block
        for entry in node.entries:
            if entry.value not in seen:
                seen.add(entry.value)
                block = repo.store.get(entry.value)
                if block is None:
                    raise CommitError(f"record block {entry.value} for {entry.key} is missing")
                yield entry.value, block


def export_car(repo: Repository) -> Iterator[bytes]:
    """The repository as a CAR stream: commit, MST nodes and records, rooted at the commit."""
    yield car_header([repo.commit_cid])
    for cid, block in repo_blocks(repo):
        yield car_section(cid, block)


def import_car(data: bytes | BinaryIO) -> Repository:
    """A repository read from a CAR whose root is its commit, held in memory."""
    root, blocks = read_car(data)
    return Repository.load(blocks, root)
