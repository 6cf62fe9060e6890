"""Resolving DIDs and handles, with several directories, caching, and bidirectional checks.

resolver = IdentityResolver(session, plc_urls=["https://plc.directory", mirror])
identity = await resolver.resolve("alice.example.com")
"""

from strata.identity.did import DidResolver
from strata.identity.errors import (
    IdentityError,
    IdentityNotFound,
    InvalidIdentifier,
    ResolutionFailed,
)
from strata.identity.handle import HandleResolver
from strata.identity.resolver import Identity, IdentityResolver, Resolved

__all__ = [
    "DidResolver",
    "HandleResolver",
    "Identity",
    "IdentityError",
    "IdentityNotFound",
    "IdentityResolver",
    "InvalidIdentifier",
    "ResolutionFailed",
    "Resolved",
]
