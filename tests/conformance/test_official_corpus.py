"""Every `#commit` recorded from the official PDS verifies: signature and MST inversion."""

from __future__ import annotations

import pytest

from strata.core.crypto import parse_did_key
from strata.core.repo import verify_commit_event
from tests.corpus import corpus_dir, frames, signing_keys


def test_official_commits_verify() -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("the official corpus is not beside the conformance vectors")
    keys = signing_keys(corpus)
    commits = inverted = 0
    for header, body in frames(corpus):
        if header.get("t") != "#commit":
            continue
        result = verify_commit_event(
            body, parse_did_key(keys[body["repo"]]), require_prev_data=False
        )
        commits += 1
        inverted += result.inverted
    assert commits == 5627
    assert inverted == 5587
