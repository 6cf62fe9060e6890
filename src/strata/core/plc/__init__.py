"""did:plc operations, their validation, and the DID documents they describe.

Pure functions over the JSON form of operations (dicts of strings, lists and null), as the
directory's HTTP API carries them. The directory service and the resolver both build on this.
"""

from strata.core.plc.document import DocumentData, document_data, format_did_document
from strata.core.plc.log import (
    RECOVERY_WINDOW_MS,
    IndexedOp,
    NextOp,
    assure_valid_next_op,
    check_rate_limit,
    validate_operation_log,
)
from strata.core.plc.operation import (
    GenesisHashMismatch,
    ImproperOperation,
    InvalidSignature,
    LateRecovery,
    MisorderedOperation,
    PlcError,
    assure_valid_sig,
    check_limits,
    did_for_genesis,
    is_tombstone,
    next_operation,
    normalize_operation,
    operation_cid,
    parse_operation,
    sign_operation,
    validate_plc_did,
)

__all__ = [
    "RECOVERY_WINDOW_MS",
    "DocumentData",
    "GenesisHashMismatch",
    "ImproperOperation",
    "IndexedOp",
    "InvalidSignature",
    "LateRecovery",
    "MisorderedOperation",
    "NextOp",
    "PlcError",
    "assure_valid_next_op",
    "assure_valid_sig",
    "check_limits",
    "check_rate_limit",
    "did_for_genesis",
    "document_data",
    "format_did_document",
    "is_tombstone",
    "next_operation",
    "normalize_operation",
    "operation_cid",
    "parse_operation",
    "sign_operation",
    "validate_operation_log",
    "validate_plc_did",
]
