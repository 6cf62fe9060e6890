"""Which OAuth scopes a PDS grants and what each lets a token do, as the reference PDS reads
the transitional scopes: `transition:generic` is about what an app password can do (records,
blobs, calls to other services except chat), `transition:chat.bsky` adds chat, and
`transition:email` lets `getSession` show the email. Identity and account management (handle,
PLC operations, deactivation, email changes) are not granted by any of them, and some methods
(app passwords, invite codes, account deletion) never take OAuth tokens."""

from __future__ import annotations

from enum import Enum
from typing import Final

ATPROTO: Final = "atproto"
GENERIC: Final = "transition:generic"
CHAT: Final = "transition:chat.bsky"
EMAIL: Final = "transition:email"
SUPPORTED: Final = (ATPROTO, GENERIC, CHAT, EMAIL)

DESCRIPTIONS: Final = {
    ATPROTO: "Know your account's identity (its DID and handle)",
    GENERIC: "Read and write your posts, likes, follows and other records, upload images, "
    "and use other services as you (not chat, not account settings)",
    CHAT: "Read and send your direct messages",
    EMAIL: "See your email address",
}


class Need(Enum):
    """What a method needs from an OAuth token."""

    ANY = "any"
    """Any token (getSession, checkAccountStatus)."""
    REPO = "repo"
    """Records and blobs."""
    RPC = "rpc"
    """A call made for the account to another service (chat methods need the chat scope)."""
    IDENTITY = "identity"
    """Handle changes and PLC operations."""
    ACCOUNT = "account"
    """Account status and email management."""
    NONE = "none"
    """Full sessions only: OAuth tokens are refused."""


class ScopeRefused(Exception):
    """The token's scopes do not allow the method; `error` is the reference's error name."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def parse_scope(scope: str | None) -> tuple[str, ...]:
    """The supported scopes in a space-separated `scope`, each once, in order; others are
    dropped, as the reference drops scopes it cannot show the user."""
    found: list[str] = []
    for part in (scope or "").split(" "):
        if part in SUPPORTED and part not in found:
            found.append(part)
    return tuple(found)


def check(scopes: frozenset[str], need: Need, nsid: str) -> None:
    """Refuse (`ScopeRefused`) unless a token with `scopes` may call `nsid`, which needs
    `need`."""
    if ATPROTO not in scopes:
        raise ScopeRefused("InvalidToken", 'OAuth token does not have "atproto" scope')
    if need is Need.ANY:
        return
    if need is Need.NONE:
        raise ScopeRefused("Forbidden", "OAuth credentials are not supported for this endpoint")
    missing = {
        Need.REPO: None if GENERIC in scopes else "repo:*",
        Need.RPC: _rpc_missing(scopes, nsid),
        Need.IDENTITY: "identity:*",
        Need.ACCOUNT: "account:*?action=manage",
    }[need]
    if missing is not None:
        raise ScopeRefused("ScopeMissingError", f'Missing required scope "{missing}"')


def _rpc_missing(scopes: frozenset[str], nsid: str) -> str | None:
    if nsid.startswith("chat.bsky."):
        return None if CHAT in scopes else CHAT
    return None if GENERIC in scopes else f"rpc:{nsid}"
