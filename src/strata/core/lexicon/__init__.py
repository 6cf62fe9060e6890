"""Lexicon: atproto's schema language, and validation of data against it.

`Catalog` holds parsed schema documents and validates records, values and XRPC bodies;
`Catalog.bundled()` loads the schemas Strata ships for the record types it indexes and serves.
"""

from strata.core.errors import LexiconError
from strata.core.lexicon.catalog import Catalog
from strata.core.lexicon.graphemes import count_graphemes, split_graphemes
from strata.core.lexicon.schema import (
    STRING_FORMATS,
    ArrayDef,
    BlobDef,
    BodyDef,
    BooleanDef,
    BytesDef,
    CidLinkDef,
    Def,
    FieldDef,
    IntegerDef,
    Lexicon,
    ObjectDef,
    ParamsDef,
    Permission,
    PermissionSetDef,
    ProcedureDef,
    QueryDef,
    RecordDef,
    RefDef,
    StringDef,
    SubscriptionDef,
    TokenDef,
    UnionDef,
    UnknownDef,
    parse_lexicon,
    qualify_ref,
)
from strata.core.lexicon.validate import (
    ValidationError,
    check_record_key,
    mime_type_matches,
    validate_value,
)

__all__ = [
    "STRING_FORMATS",
    "ArrayDef",
    "BlobDef",
    "BodyDef",
    "BooleanDef",
    "BytesDef",
    "Catalog",
    "CidLinkDef",
    "Def",
    "FieldDef",
    "IntegerDef",
    "Lexicon",
    "LexiconError",
    "ObjectDef",
    "ParamsDef",
    "Permission",
    "PermissionSetDef",
    "ProcedureDef",
    "QueryDef",
    "RecordDef",
    "RefDef",
    "StringDef",
    "SubscriptionDef",
    "TokenDef",
    "UnionDef",
    "UnknownDef",
    "ValidationError",
    "check_record_key",
    "count_graphemes",
    "mime_type_matches",
    "parse_lexicon",
    "qualify_ref",
    "split_graphemes",
    "validate_value",
]
