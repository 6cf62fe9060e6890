"""Exception types raised by `strata.core`.

Every error a caller may need to tell apart is a subclass of `CoreError`, which is itself a
`ValueError`, so code that only cares "was this input bad" can catch one type.
"""


class CoreError(ValueError):
    """Base class for every input the protocol core rejects."""


class InvalidSyntax(CoreError):
    """A string is not a valid identifier of the expected kind (DID, handle, NSID, ...)."""


class DecodeError(CoreError):
    """Bytes are not a valid encoding (DAG-CBOR, CAR, multibase, varint, ...)."""


class CryptoError(CoreError):
    """A key or signature is malformed, or a signature does not verify."""


class MSTError(CoreError):
    """A Merkle Search Tree is malformed, incomplete, or an operation on it is impossible."""


class CommitError(CoreError):
    """A repository commit or a firehose commit message fails verification."""


class LexiconError(CoreError):
    """A lexicon schema is invalid, or data does not match its schema."""


class CommitSignatureInvalid(CommitError):
    """A commit's signature does not verify with the account's key."""


class CommitInversionFailed(CommitError):
    """Undoing a commit's ops on its partial tree does not give back `prevData`."""


class CommitTooLarge(CommitError):
    """A commit message is over the protocol's size limits (blocks bytes or op count)."""
