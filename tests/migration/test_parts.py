"""The migration's parts on their own: the state file, rotation keys, reading exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.migration.rotation import (
    MAX_ROTATION_KEYS,
    RotationKeyError,
    create_key,
    load_key,
    with_user_keys,
)
from strata.migration.state import MigrationState, StateMismatch
from strata.migration.transfer import TransferFailed, summarize


def test_state_round_trip_private_and_bound_to_one_move(tmp_path: Path) -> None:
    path = tmp_path / "move.json"
    state = MigrationState.open(path, "did:plc:a", "http://old", "http://new")
    assert not path.exists() and not state.is_done("import-repo")
    state.signed_operation = {"type": "plc_operation"}
    state.mark_done("import-repo")
    assert path.stat().st_mode & 0o777 == 0o600

    again = MigrationState.open(path, "did:plc:a", "http://elsewhere", "http://new")
    assert again.is_done("import-repo") and again.signed_operation == {"type": "plc_operation"}
    again.undo("import-repo")
    assert not MigrationState.open(path, "did:plc:a", "x", "http://new").is_done("import-repo")

    with pytest.raises(StateMismatch, match="did:plc:a to http://new"):
        MigrationState.open(path, "did:plc:b", "http://old", "http://new")
    with pytest.raises(StateMismatch, match="did:plc:a to http://new"):
        MigrationState.open(path, "did:plc:a", "http://old", "http://third")
    path.write_text("{not json")
    with pytest.raises(StateMismatch, match="cannot read"):
        MigrationState.open(path, "did:plc:a", "http://old", "http://new")


def test_user_keys_come_first_once_and_the_limit_holds() -> None:
    assert with_user_keys(["did:key:pds", "did:key:me"], ["did:key:me"]) == [
        "did:key:me",
        "did:key:pds",
    ]
    keys = [f"did:key:{n}" for n in range(MAX_ROTATION_KEYS)]
    with pytest.raises(RotationKeyError, match="at most"):
        with_user_keys(keys, ["did:key:mine"])


def test_key_files(tmp_path: Path) -> None:
    path = tmp_path / "key"
    key = create_key(path)
    assert load_key(path).did() == key.did()
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(RotationKeyError, match="already exists"):
        create_key(path)
    path.write_text("not hex")
    with pytest.raises(RotationKeyError, match="cannot read"):
        load_key(path)
    with pytest.raises(RotationKeyError, match="cannot read"):
        load_key(tmp_path / "missing")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_summarize_refuses_anything_but_a_repository(data: bytes) -> None:
    with pytest.raises(TransferFailed):
        summarize(data)
