"""Signed repository commits (repo format v3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strata.core import cbor
from strata.core.cid import CID
from strata.core.crypto import Keypair, PublicKey
from strata.core.errors import CommitError, CoreError
from strata.core.syntax import validate_did, validate_tid

REPO_VERSION = 3


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit: the repo's DID, the MST root (`data`), a revision TID and a signature."""

    did: str
    data: CID
    rev: str
    sig: bytes
    prev: CID | None = None
    version: int = REPO_VERSION

    def unsigned(self) -> dict[str, Any]:
        """The commit without its signature: what the signature covers."""
        return {
            "did": self.did,
            "version": self.version,
            "data": self.data,
            "rev": self.rev,
            "prev": self.prev,
        }

    def to_dict(self) -> dict[str, Any]:
        """The commit as a data-model object."""
        return {**self.unsigned(), "sig": self.sig}

    def encode(self) -> tuple[CID, bytes]:
        """The commit's CID and block."""
        return cbor.encode_with_cid(self.to_dict())

    def verify(self, key: PublicKey) -> bool:
        """Whether the signature was made by `key` over this commit."""
        return key.verify(cbor.encode(self.unsigned()), self.sig)

    @classmethod
    def decode(cls, block: bytes) -> Commit:
        """Parse and check a commit block."""
        try:
            data = cbor.decode(block)
        except CoreError as exc:
            raise CommitError(f"commit is not valid DAG-CBOR: {exc}") from exc
        if not isinstance(data, dict):
            raise CommitError("commit must be a map")
        version = data.get("version")
        if version != REPO_VERSION:
            raise CommitError(f"unsupported repo version {version!r}")
        did, root, rev, sig = data.get("did"), data.get("data"), data.get("rev"), data.get("sig")
        prev = data.get("prev")
        if not isinstance(did, str) or not isinstance(rev, str):
            raise CommitError("commit did and rev must be strings")
        if not isinstance(root, CID) or (prev is not None and not isinstance(prev, CID)):
            raise CommitError("commit data and prev must be CID links")
        if not isinstance(sig, bytes):
            raise CommitError("commit sig must be bytes")
        try:
            validate_did(did)
            validate_tid(rev)
        except CoreError as exc:
            raise CommitError(f"commit has an invalid field: {exc}") from exc
        return cls(did=did, data=root, rev=rev, sig=sig, prev=prev)


def sign_commit(did: str, data: CID, rev: str, keypair: Keypair, prev: CID | None = None) -> Commit:
    """A new commit signed with `keypair`."""
    unsigned = Commit(did=did, data=data, rev=rev, sig=b"", prev=prev)
    return Commit(
        did=did, data=data, rev=rev, prev=prev, sig=keypair.sign(cbor.encode(unsigned.unsigned()))
    )
