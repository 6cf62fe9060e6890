"""Repositories: signed commits over an MST of records, CAR import/export, commit verification."""

from strata.core.repo.commit import REPO_VERSION, Commit, sign_commit
from strata.core.repo.repository import (
    CommitResult,
    RepoOp,
    Repository,
    Write,
    export_car,
    import_car,
    repo_blocks,
)
from strata.core.repo.sync import VerifiedCommit, verify_commit_event

__all__ = [
    "REPO_VERSION",
    "Commit",
    "CommitResult",
    "RepoOp",
    "Repository",
    "VerifiedCommit",
    "Write",
    "export_car",
    "import_car",
    "repo_blocks",
    "sign_commit",
    "verify_commit_event",
]
