"""`importRepo`: replace an account's repository with one exported elsewhere (migration).

The CAR must hold a complete repository of this account: every MST node and record its commit
reaches. The account's blocks, record index and blob links are rebuilt from it in one
transaction; blobs the records reference show up in `listMissingBlobs` until uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.core import cbor
from strata.core.car import read_car
from strata.core.cid import CID
from strata.core.errors import CoreError
from strata.core.repo import Repository, repo_blocks
from strata.net.errors import invalid_request
from strata.net.logs import log_event
from strata.pds.service import Pds, log
from strata.pds.writer import find_blobs


@dataclass(frozen=True)
class ParsedRepo:
    """A repository read from a CAR and checked, ready to store."""

    root: CID
    rev: str
    blocks: dict[CID, bytes]
    records: list[tuple[str, CID, object]]


def parse_repo(did: str, data: bytes) -> ParsedRepo:
    """Read and check the repository in `data` (CPU-bound: callers run it off the event
    loop); 400 when it is not a complete repository of `did`."""
    try:
        root, blocks = read_car(data)
        repo = Repository.load(blocks, root)
        if repo.did != did:
            raise invalid_request(f"Imported repository is for {repo.did}, not {did}")
        reachable = dict(repo_blocks(repo))
        records = [(path, cid, cbor.decode(reachable[cid])) for path, cid in repo.records()]
    except CoreError as exc:
        raise invalid_request(f"Could not import repository: {exc}") from exc
    return ParsedRepo(root, repo.rev, reachable, records)


def import_repo(pds: Pds, did: str, parsed: ParsedRepo) -> None:
    """Store a parsed repository as the account's; announce it with a `#sync` event."""
    store = pds.stores.open(did)
    with store.transaction() as conn:
        store.clear_repo(conn)
        store.blocks.pending.update(parsed.blocks)
        for path, cid, value in parsed.records:
            collection, rkey = path.split("/", 1)
            store.index_record(conn, collection, rkey, cid, parsed.rev)
            for ref in find_blobs(value):
                store.link_blob(conn, str(ref.cid), path)
        store.save_commit(conn, Repository.load(store.blocks, parsed.root), ())
    pds.sequencer.sync(did, parsed.root, parsed.blocks[parsed.root], parsed.rev)
    log_event(log, "repository imported", did=did, rev=parsed.rev, records=len(parsed.records))
