"""`importRepo`: replace an account's repository with one exported elsewhere (migration).

The CAR must hold a complete repository of this account: every MST node and record its commit
reaches. The account's blocks, record index and blob links are rebuilt from it in one
transaction; blobs the records reference show up in `listMissingBlobs` until uploaded.
"""

from __future__ import annotations

from strata.core import cbor
from strata.core.car import read_car
from strata.core.errors import CoreError
from strata.core.repo import Repository, repo_blocks
from strata.net.errors import invalid_request
from strata.net.logs import log_event
from strata.pds.service import Pds, log
from strata.pds.writer import find_blobs


def import_repo(pds: Pds, did: str, data: bytes) -> None:
    """Check and store the repository in `data`; announce it with a `#sync` event."""
    try:
        root, blocks = read_car(data)
        repo = Repository.load(blocks, root)
        if repo.did != did:
            raise invalid_request(f"Imported repository is for {repo.did}, not {did}")
        reachable = dict(repo_blocks(repo))
        records = [(path, cid, cbor.decode(reachable[cid])) for path, cid in repo.records()]
    except CoreError as exc:
        raise invalid_request(f"Could not import repository: {exc}") from exc
    store = pds.stores.open(did)
    rev = repo.rev
    with store.transaction() as conn:
        store.clear_repo(conn)
        store.blocks.pending.update(reachable)
        for path, cid, value in records:
            collection, rkey = path.split("/", 1)
            store.index_record(conn, collection, rkey, cid, rev)
            for ref in find_blobs(value):
                store.link_blob(conn, str(ref.cid), path)
        store.save_commit(conn, Repository.load(store.blocks, root), ())
    pds.sequencer.sync(did, root, reachable[root], rev)
    log_event(log, "repository imported", did=did, rev=rev, records=len(records))
