"""Repositories: signed commits, writes, CAR export/import, and firehose commit verification."""

from __future__ import annotations

import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core import cbor
from strata.core.car import read_car, write_car
from strata.core.cid import CID
from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.errors import CommitError, CoreError
from strata.core.repo import (
    REPO_VERSION,
    Commit,
    CommitResult,
    RepoOp,
    Repository,
    Write,
    export_car,
    import_car,
    sign_commit,
    verify_commit_event,
)
from strata.core.repo.sync import MAX_OPS
from strata.core.syntax import tid_from_parts, tid_timestamp_micros

KEY = K256Keypair.generate()
OTHER_KEY = K256Keypair.generate()
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
PROFILE = "app.bsky.actor.profile"
BASE_MICROS = 1_700_000_000_000_000


def rkey(n: int) -> str:
    return tid_from_parts(BASE_MICROS + n * 1_000_003, n % 1024)


def post(text: str) -> dict[str, Any]:
    return {"$type": POST, "text": text, "createdAt": "2024-01-01T00:00:00.000Z"}


def create(collection: str, key: str, record: dict[str, Any]) -> Write:
    return Write("create", collection, key, record)


def event_of(result: CommitResult, blocks: dict[CID, bytes] | None = None) -> dict[str, Any]:
    """A `#commit` event body, as a firehose would carry it, for a commit."""
    return {
        "repo": result.commit.did,
        "commit": result.cid,
        "rev": result.commit.rev,
        "since": result.since,
        "blocks": write_car([result.cid], (blocks or result.event_blocks).items()),
        "ops": [op.to_event() for op in result.ops],
        "prevData": result.prev_data,
        "blobs": [],
        "time": "2024-01-01T00:00:00.000Z",
        "seq": 1,
        "rebase": False,
        "tooBig": False,
    }


def sample_repo() -> tuple[Repository, dict[str, dict[str, Any]]]:
    """A repository of a profile, five posts and two likes, and the records by path."""
    records: dict[str, dict[str, Any]] = {f"{PROFILE}/self": {"$type": PROFILE, "name": "A"}}
    writes = [create(PROFILE, "self", records[f"{PROFILE}/self"])]
    for i in range(5):
        records[f"{POST}/{rkey(i)}"] = post(f"post {i}")
        writes.append(create(POST, rkey(i), post(f"post {i}")))
    for i in range(2):
        like = {"$type": LIKE, "subject": {"uri": f"at://{DID}/{POST}/{rkey(i)}"}}
        records[f"{LIKE}/{rkey(100 + i)}"] = like
        writes.append(create(LIKE, rkey(100 + i), like))
    result = Repository.create({}, DID, KEY, writes)
    return result.repo, records


def mixed_commit(repo: Repository) -> CommitResult:
    return repo.apply_writes(
        [
            create(POST, rkey(50), post("new")),
            Write("update", POST, rkey(1), post("edited")),
            Write("delete", POST, rkey(2)),
            Write("delete", LIKE, rkey(100)),
        ],
        KEY,
    )


# --- writing and reading -----------------------------------------------------------------------


def test_create_and_read_records() -> None:
    repo, records = sample_repo()
    assert repo.did == DID
    assert repo.tree.check() == len(records)
    for path, record in records.items():
        collection, key = path.split("/")
        got = repo.get_record(collection, key)
        assert got is not None
        cid, value = got
        assert value == record and cid == cbor.cid_of(record)
    assert repo.get_record(POST, rkey(99)) is None
    assert [p for p, _ in repo.records()] == sorted(records)
    assert [p for p, _ in repo.records(POST)] == sorted(p for p in records if p.startswith(POST))
    assert [p for p, _ in repo.records(LIKE)] == sorted(p for p in records if p.startswith(LIKE))
    assert list(repo.records("app.bsky.feed")) == []
    assert list(repo.records("app.bsky.feed.repost")) == []


def test_empty_repository() -> None:
    result = Repository.create({}, DID, KEY)
    assert result.ops == [] and result.since is None and result.prev_data is None
    assert list(result.repo.records()) == []
    assert str(result.commit.data) == "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    assert result.commit.verify(KEY.public_key)


def test_apply_creates_updates_deletes() -> None:
    repo, records = sample_repo()
    before_records = list(repo.records())
    old_cid = repo.get_record(POST, rkey(1))
    liked = repo.get_record(LIKE, rkey(100))
    deleted = repo.get_record(POST, rkey(2))
    assert old_cid is not None and liked is not None and deleted is not None

    result = mixed_commit(repo)
    new = result.repo
    assert [(op.action, op.path) for op in result.ops] == [
        ("create", f"{POST}/{rkey(50)}"),
        ("update", f"{POST}/{rkey(1)}"),
        ("delete", f"{POST}/{rkey(2)}"),
        ("delete", f"{LIKE}/{rkey(100)}"),
    ]
    create_op, update_op, delete_op, unlike_op = result.ops
    assert create_op.prev is None and create_op.cid == cbor.cid_of(post("new"))
    assert update_op.prev == old_cid[0] and update_op.cid == cbor.cid_of(post("edited"))
    assert delete_op.cid is None and delete_op.prev == deleted[0]
    assert unlike_op.cid is None and unlike_op.prev == liked[0]
    assert create_op.to_event() == {
        "action": "create",
        "path": create_op.path,
        "cid": create_op.cid,
    }
    assert delete_op.to_event() == {
        "action": "delete",
        "path": delete_op.path,
        "cid": None,
        "prev": deleted[0],
    }

    assert new.get_record(POST, rkey(50)) == (create_op.cid, post("new"))
    assert new.get_record(POST, rkey(1)) == (update_op.cid, post("edited"))
    assert new.get_record(POST, rkey(2)) is None
    assert new.get_record(LIKE, rkey(100)) is None
    assert new.tree.check() == len(records) - 1
    assert result.prev_data == repo.tree.root
    assert result.since == repo.rev
    assert result.commit.data == new.tree.root
    # The repository the writes were applied to is unchanged.
    assert list(repo.records()) == before_records
    # Everything the commit wrote is in the store, and the new state loads from it.
    assert set(result.new_blocks) <= set(new.store)
    assert result.cid in result.new_blocks and result.cid in result.event_blocks
    loaded = Repository.load(new.store, result.cid)
    assert list(loaded.records()) == list(new.records())
    assert loaded.commit == result.commit


def test_commit_signature() -> None:
    repo, _ = sample_repo()
    result = mixed_commit(repo)
    assert result.commit.verify(KEY.public_key)
    assert not result.commit.verify(OTHER_KEY.public_key)
    assert not result.commit.verify(P256Keypair.generate().public_key)
    tampered = Commit(
        did=result.commit.did,
        data=repo.tree.root,
        rev=result.commit.rev,
        sig=result.commit.sig,
    )
    assert not tampered.verify(KEY.public_key)
    cid, block = result.commit.encode()
    assert cid == result.cid and Commit.decode(block) == result.commit
    assert cbor.decode(block) == {
        "did": DID,
        "version": REPO_VERSION,
        "data": result.commit.data,
        "rev": result.commit.rev,
        "prev": None,
        "sig": result.commit.sig,
    }


def test_revs_strictly_increase() -> None:
    first_rev = tid_from_parts(BASE_MICROS, 0)
    repo = Repository.create({}, DID, KEY, rev=first_rev).repo
    assert repo.rev == first_rev
    revs = [repo.rev]
    for i, rev in enumerate([None, tid_from_parts(1_000, 0), first_rev, None, None]):
        result = repo.apply_writes([create(POST, rkey(i), post(str(i)))], KEY, rev=rev)
        assert result.since == repo.rev
        repo = result.repo
        revs.append(repo.rev)
    assert revs == sorted(set(revs))
    # A stale rev becomes one microsecond after the previous one.
    stale = repo.apply_writes([], KEY, rev=tid_from_parts(1_000, 0)).repo
    assert tid_timestamp_micros(stale.rev) == tid_timestamp_micros(repo.rev) + 1
    # A newer rev is used as given.
    newer = tid_from_parts(tid_timestamp_micros(stale.rev) + 10**9, 7)
    assert stale.apply_writes([], KEY, rev=newer).repo.rev == newer


@pytest.mark.parametrize(
    ("writes", "message"),
    [
        pytest.param(
            [create(POST, rkey(0), post("again"))], "already exists", id="create-existing"
        ),
        pytest.param([Write("update", POST, rkey(99), post("x"))], "no such", id="update-missing"),
        pytest.param([Write("delete", POST, rkey(99))], "no such", id="delete-missing"),
        pytest.param(
            [create(POST, rkey(60), post("a")), Write("delete", POST, rkey(60))],
            "more than once",
            id="same-path-twice",
        ),
        pytest.param(
            [Write("update", POST, rkey(0), post("a")), Write("delete", POST, rkey(0))],
            "more than once",
            id="update-then-delete",
        ),
        pytest.param([create("notnsid", "a", post("x"))], "invalid record path", id="bad-nsid"),
        pytest.param([create("app.bsky", "a", post("x"))], "invalid record path", id="short-nsid"),
        pytest.param([create(POST, ".", post("x"))], "invalid record path", id="rkey-dot"),
        pytest.param([create(POST, "..", post("x"))], "invalid record path", id="rkey-dotdot"),
        pytest.param([create(POST, "a/b", post("x"))], "invalid record path", id="rkey-slash"),
        pytest.param([create(POST, "", post("x"))], "invalid record path", id="rkey-empty"),
        pytest.param([create(POST, "a b", post("x"))], "invalid record path", id="rkey-space"),
        pytest.param([Write("create", POST, rkey(61))], "needs a record", id="no-record"),
    ],
)
def test_write_errors(writes: list[Write], message: str) -> None:
    repo, _ = sample_repo()
    rev, root = repo.rev, repo.tree.root
    with pytest.raises(CommitError, match=message):
        repo.apply_writes(writes, KEY)
    assert (repo.rev, repo.tree.root) == (rev, root)


def test_create_rejects_same_path_twice() -> None:
    with pytest.raises(CommitError, match="more than once"):
        Repository.create(
            {}, DID, KEY, [create(POST, "a", post("1")), create(POST, "a", post("2"))]
        )


@pytest.mark.parametrize(
    ("did", "rev"),
    [
        pytest.param("not-a-did", None, id="bad-did"),
        pytest.param(DID, "hello", id="bad-rev"),
        pytest.param(DID, "zzzzzzzzzzzzz", id="rev-high-bit"),
    ],
)
def test_create_rejects_invalid_did_or_rev(did: str, rev: str | None) -> None:
    with pytest.raises(CoreError):
        Repository.create({}, did, KEY, rev=rev)


# --- CAR export and import ---------------------------------------------------------------------


def test_export_import_round_trip() -> None:
    repo, _records = sample_repo()
    repo = mixed_commit(repo).repo
    data = b"".join(export_car(repo))
    root, blocks = read_car(data)
    assert root == repo.commit_cid
    for source in (data, io.BytesIO(data)):
        imported = import_car(source)
        assert imported.commit_cid == repo.commit_cid
        assert imported.commit == repo.commit
        assert imported.tree.root == repo.tree.root
        assert list(imported.records()) == list(repo.records())
        for path, cid in repo.records():
            collection, key = path.split("/")
            assert imported.get_record(collection, key) == (cid, repo.read_block(cid))
        assert imported.tree.check() == len(list(repo.records()))
        assert imported.commit.verify(KEY.public_key)
    # The export holds the commit, every MST node and every record, each exactly once.
    node_cids = {node.cid for node in repo.tree.nodes()}
    record_cids = {cid for _, cid in repo.records()}
    assert set(blocks) == {repo.commit_cid} | node_cids | record_cids


def test_export_shares_identical_records() -> None:
    same = post("same")
    result = Repository.create({}, DID, KEY, [create(POST, rkey(i), same) for i in range(4)])
    data = b"".join(export_car(result.repo))
    _, blocks = read_car(data)
    assert cbor.cid_of(same) in blocks
    assert import_car(data).get_record(POST, rkey(3)) == (cbor.cid_of(same), same)


def test_export_missing_record_block() -> None:
    repo, _ = sample_repo()
    got = repo.get_record(POST, rkey(0))
    assert got is not None
    del repo.store[got[0]]
    with pytest.raises(CommitError, match="missing"):
        b"".join(export_car(repo))


def test_import_rejects_bad_commits() -> None:
    with pytest.raises(CommitError, match="missing"):
        Repository.load({}, CID.dag_cbor(b"x"))
    for value in [
        [1],
        {"version": 2},
        {"version": 3, "did": DID, "rev": 1, "data": CID.dag_cbor(b""), "sig": b""},
        {"version": 3, "did": DID, "rev": rkey(0), "data": "x", "sig": b""},
        {"version": 3, "did": DID, "rev": rkey(0), "data": CID.dag_cbor(b""), "sig": "x"},
        {"version": 3, "did": "x", "rev": rkey(0), "data": CID.dag_cbor(b""), "sig": b""},
        {
            "version": 3,
            "did": DID,
            "rev": rkey(0),
            "data": CID.dag_cbor(b""),
            "sig": b"",
            "prev": "x",
        },
    ]:
        cid, block = cbor.encode_with_cid(value)
        with pytest.raises(CommitError):
            import_car(write_car([cid], [(cid, block)]))
    cid = CID.dag_cbor(b"\xff")
    with pytest.raises(CommitError, match="DAG-CBOR"):
        Repository.load({cid: b"\xff"}, cid)


# --- verifying commit events -------------------------------------------------------------------


def test_verify_commit_event_accepts() -> None:
    repo, _ = sample_repo()
    result = mixed_commit(repo)
    verified = verify_commit_event(event_of(result), KEY.public_key)
    assert verified.inverted
    assert verified.cid == result.cid
    assert verified.commit == result.commit
    assert verified.ops == result.ops
    # Without a key the signature is not checked, but everything else is.
    assert verify_commit_event(event_of(result), None).inverted


def test_verify_commit_event_without_prev_data() -> None:
    genesis = Repository.create({}, DID, KEY, [create(POST, rkey(0), post("hi"))])
    event = event_of(genesis)
    assert event["prevData"] is None
    with pytest.raises(CommitError, match="no prevData"):
        verify_commit_event(event, KEY.public_key)
    verified = verify_commit_event(event, KEY.public_key, require_prev_data=False)
    assert not verified.inverted
    assert verified.ops == genesis.ops
    # A later commit with prevData removed is accepted the same way, without inversion.
    later = event_of(mixed_commit(sample_repo()[0]))
    later["prevData"] = None
    assert not verify_commit_event(later, KEY.public_key, require_prev_data=False).inverted


def without(result: CommitResult, cid: CID) -> dict[str, Any]:
    return event_of(result, {c: b for c, b in result.event_blocks.items() if c != cid})


def rejection_cases() -> list[Any]:
    repo, _ = sample_repo()
    result = mixed_commit(repo)
    base = event_of(result)
    other_repo = Repository.create({}, DID, KEY, [create(POST, rkey(0), post("x"))])
    cases: list[tuple[str, dict[str, Any], str]] = []

    def case(name: str, message: str, **changes: Any) -> None:
        cases.append((name, {**base, **changes}, message))

    case("tampered-prev-data", "prevData", prevData=other_repo.commit.data)
    case("prev-data-not-cid", "prevData must be", prevData="bafy")
    case("op-removed", "inversion failed|prevData", ops=base["ops"][1:])
    case("op-removed-last", "inversion failed|prevData", ops=base["ops"][:-1])
    case("wrong-did", "event is for", repo="did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
    case("mismatched-rev", "differs", rev=tid_from_parts(BASE_MICROS, 1))
    case("too-many-ops", "over the limit", ops=[base["ops"][0]] * (MAX_OPS + 1))
    case("blocks-not-bytes", "blocks", blocks="x")
    case("ops-not-list", "blocks and ops", ops=None)
    case("commit-not-cid", "repo, commit and rev", commit=str(result.cid))
    case("not-a-car", "not a valid CAR", blocks=b"\x00garbage")
    case("other-commit", "root is not", commit=other_repo.cid)
    case("blocks-too-big", "over the", blocks=base["blocks"] + bytes(2_000_001))
    case("duplicate-op", "appears twice", ops=[*base["ops"], base["ops"][0]])
    ops = [dict(op) for op in base["ops"]]
    ops[1]["cid"] = CID.dag_cbor(b"not the record")
    case("op-cid-changed", "missing|match", ops=ops)
    ops = [dict(op) for op in base["ops"]]
    ops[1]["prev"] = CID.dag_cbor(b"not the old record")
    case("op-prev-changed", "prevData", ops=ops)
    ops = [dict(op) for op in base["ops"]]
    del ops[1]["prev"]
    case("update-without-prev", "lacks prev", ops=ops)
    ops = [dict(op) for op in base["ops"]]
    ops[2]["cid"] = result.ops[0].cid
    case("delete-with-cid", "must not", ops=ops)
    ops = [dict(op) for op in base["ops"]]
    ops[0]["action"] = "upsert"
    case("bad-action", "invalid action", ops=ops)
    case("op-not-map", "op must be a map", ops=["x"])
    cases.append(("record-block-removed", without(result, result.ops[0].cid), "record block"))
    cases.append(("commit-block-removed", without(result, result.cid), "not a valid CAR"))
    cases.append(("mst-root-removed", without(result, result.commit.data), "inversion failed"))
    return [pytest.param(event, message, id=name) for name, event, message in cases]


@pytest.mark.parametrize(("event", "message"), rejection_cases())
def test_verify_commit_event_rejects(event: dict[str, Any], message: str) -> None:
    with pytest.raises(CommitError, match=message):
        verify_commit_event(event, KEY.public_key)


def test_verify_commit_event_rejects_wrong_key() -> None:
    result = mixed_commit(sample_repo()[0])
    for key in (OTHER_KEY.public_key, P256Keypair.generate().public_key):
        with pytest.raises(CommitError, match="signature"):
            verify_commit_event(event_of(result), key)


def test_verify_commit_event_rejects_forged_commit() -> None:
    result = mixed_commit(sample_repo()[0])
    forged = sign_commit(DID, result.commit.data, result.commit.rev, OTHER_KEY)
    cid, block = forged.encode()
    blocks = {cid: block, **{c: b for c, b in result.event_blocks.items() if c != result.cid}}
    event = {**event_of(result), "commit": cid, "blocks": write_car([cid], blocks.items())}
    with pytest.raises(CommitError, match="signature"):
        verify_commit_event(event, KEY.public_key)
    assert verify_commit_event(event, OTHER_KEY.public_key).inverted


def test_every_missing_mst_block_is_caught_or_unneeded() -> None:
    repo, _ = sample_repo()
    result = mixed_commit(repo)
    records = {op.cid for op in result.ops if op.cid is not None}
    mst_blocks = [c for c in result.event_blocks if c != result.cid and c not in records]
    assert result.commit.data in mst_blocks
    failures = 0
    for cid in mst_blocks:
        try:
            verify_commit_event(
                event_of(result, {c: b for c, b in result.event_blocks.items() if c != cid}),
                KEY.public_key,
            )
        except CommitError:
            failures += 1
    assert failures >= 1


# --- property: any commit verifies by inversion ------------------------------------------------

COLLECTIONS = [POST, LIKE, "app.bsky.graph.follow"]
PATHS = [(c, rkey(i)) for c in COLLECTIONS for i in range(12)] + [(PROFILE, "self")]


@st.composite
def repo_and_writes(draw: st.DrawFn) -> tuple[list[Write], list[Write]]:
    existing = draw(st.sets(st.sampled_from(PATHS), max_size=25))
    initial = [
        create(c, k, {"$type": c, "n": draw(st.integers(0, 3))}) for c, k in sorted(existing)
    ]
    targets = draw(st.lists(st.sampled_from(PATHS), unique=True, min_size=1, max_size=12))
    writes: list[Write] = []
    for c, k in targets:
        record = {"$type": c, "n": draw(st.integers(0, 5)), "v": 2}
        if (c, k) in existing:
            if draw(st.booleans()):
                writes.append(Write("delete", c, k))
            else:
                writes.append(Write("update", c, k, record))
        else:
            writes.append(create(c, k, record))
    return initial, writes


@given(repo_and_writes())
@settings(max_examples=100, deadline=None)
def test_any_commit_verifies_by_inversion(case: tuple[list[Write], list[Write]]) -> None:
    initial, writes = case
    store: dict[CID, bytes] = {}
    repo = Repository.create(store, DID, KEY, initial).repo
    result = repo.apply_writes(writes, KEY)
    verified = verify_commit_event(event_of(result), KEY.public_key)
    assert verified.inverted
    assert verified.ops == result.ops
    assert result.repo.tree.check() == len(list(result.repo.records()))
    # The event's blocks are far fewer than the repository's when the commit is small.
    imported = import_car(b"".join(export_car(result.repo)))
    assert imported.commit_cid == result.cid
    assert list(imported.records()) == list(result.repo.records())


@pytest.mark.parametrize("empty_repo", [True, False], ids=["empty-repo", "sample-repo"])
def test_commit_without_writes_verifies(empty_repo: bool) -> None:
    repo = Repository.create({}, DID, KEY).repo if empty_repo else sample_repo()[0]
    result = repo.apply_writes([], KEY)
    assert result.ops == [] and result.commit.data == result.prev_data
    assert verify_commit_event(event_of(result), KEY.public_key).inverted


def test_repo_op_event_shape() -> None:
    cid = CID.dag_cbor(b"x")
    assert RepoOp("create", "a.b.c/x", cid).to_event() == {
        "action": "create",
        "path": "a.b.c/x",
        "cid": cid,
    }
    assert RepoOp("update", "a.b.c/x", cid, cid).to_event()["prev"] == cid
