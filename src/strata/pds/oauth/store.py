"""OAuth state in the PDS's service database: pending authorization requests (until their
code is exchanged) and tokens (one row per authorization, whose id and refresh token change
at every refresh; refresh tokens already used are remembered to catch replays)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from strata.storage import transaction

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS oauth_request (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_auth TEXT NOT NULL,
    parameters TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    device_id TEXT,
    did TEXT,
    code TEXT UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS oauth_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_auth TEXT NOT NULL,
    parameters TEXT NOT NULL,
    scope TEXT NOT NULL,
    refresh_token TEXT UNIQUE,
    code TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS oauth_token_did ON oauth_token (did);
CREATE TABLE IF NOT EXISTS oauth_used_refresh_token (
    refresh_token TEXT PRIMARY KEY,
    token_id TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS oauth_used_refresh_token_id ON oauth_used_refresh_token (token_id);
"""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A pushed authorization request, and once the user approved it, the account and code."""

    id: str
    client_id: str
    client_auth: dict[str, Any]
    parameters: dict[str, Any]
    expires_at: int
    device_id: str | None
    did: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class Token:
    """An authorization's current token: `id` is the `jti` of its current access token."""

    id: str
    did: str
    client_id: str
    client_auth: dict[str, Any]
    parameters: dict[str, Any]
    scope: str
    refresh_token: str | None
    created_at: int
    updated_at: int
    expires_at: int

    @property
    def dpop_jkt(self) -> str | None:
        jkt = self.parameters.get("dpop_jkt")
        return jkt if isinstance(jkt, str) else None


_REQUEST_COLUMNS: Final = "id, client_id, client_auth, parameters, expires_at, device_id, did, code"
_TOKEN_COLUMNS: Final = (
    "id, did, client_id, client_auth, parameters, scope, refresh_token, created_at, "
    "updated_at, expires_at"
)


def _request(row: tuple[Any, ...] | None) -> AuthorizationRequest | None:
    if row is None:
        return None
    id_, client_id, client_auth, parameters, expires_at, device_id, did, code = row
    return AuthorizationRequest(
        id_, client_id, json.loads(client_auth), json.loads(parameters), expires_at,
        device_id, did, code,
    )  # fmt: skip


def _token(row: tuple[Any, ...] | None) -> Token | None:
    if row is None:
        return None
    values = list(row)
    values[3] = json.loads(values[3])
    values[4] = json.loads(values[4])
    return Token(*values)


class OAuthStore:
    """OAuth tables next to the accounts, on the service database's connection (used from the
    event loop's thread only)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(SCHEMA)

    # Authorization requests

    def add_request(self, request: AuthorizationRequest) -> None:
        with transaction(self.conn) as conn:
            conn.execute(
                f"INSERT INTO oauth_request ({_REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.id, request.client_id, json.dumps(request.client_auth),
                    json.dumps(request.parameters), request.expires_at, request.device_id,
                    request.did, request.code,
                ),
            )  # fmt: skip

    def request(self, request_id: str) -> AuthorizationRequest | None:
        row = self.conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM oauth_request WHERE id = ?", (request_id,)
        ).fetchone()
        return _request(row)

    def bind_device(self, request_id: str, device_id: str, expires_at: int) -> None:
        with transaction(self.conn) as conn:
            conn.execute(
                "UPDATE oauth_request SET device_id = ?, expires_at = ? WHERE id = ?",
                (device_id, expires_at, request_id),
            )

    def authorize(
        self, request_id: str, did: str, code: str, parameters: dict[str, Any], expires_at: int
    ) -> None:
        with transaction(self.conn) as conn:
            conn.execute(
                "UPDATE oauth_request SET did = ?, code = ?, parameters = ?, expires_at = ?"
                " WHERE id = ?",
                (did, code, json.dumps(parameters), expires_at, request_id),
            )

    def delete_request(self, request_id: str) -> None:
        with transaction(self.conn) as conn:
            conn.execute("DELETE FROM oauth_request WHERE id = ?", (request_id,))

    def consume_code(self, code: str) -> AuthorizationRequest | None:
        """The approved request with `code`, deleted so that the code works once."""
        with transaction(self.conn) as conn:
            row = conn.execute(
                f"DELETE FROM oauth_request WHERE code = ? RETURNING {_REQUEST_COLUMNS}", (code,)
            ).fetchone()
        return _request(row)

    def delete_expired_requests(self, now: int) -> int:
        with transaction(self.conn) as conn:
            return conn.execute("DELETE FROM oauth_request WHERE expires_at < ?", (now,)).rowcount

    # Tokens

    def add_token(self, token: Token, code: str | None) -> None:
        with transaction(self.conn) as conn:
            conn.execute(
                f"INSERT INTO oauth_token ({_TOKEN_COLUMNS}, code)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id, token.did, token.client_id, json.dumps(token.client_auth),
                    json.dumps(token.parameters), token.scope, token.refresh_token,
                    token.created_at, token.updated_at, token.expires_at, code,
                ),
            )  # fmt: skip

    def token(self, token_id: str) -> Token | None:
        row = self.conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM oauth_token WHERE id = ?", (token_id,)
        ).fetchone()
        return _token(row)

    def token_by_code(self, code: str) -> Token | None:
        row = self.conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM oauth_token WHERE code = ?", (code,)
        ).fetchone()
        return _token(row)

    def token_by_refresh(self, refresh_token: str) -> tuple[Token, bool] | None:
        """The token a refresh token belongs to, and whether it is still the current one (a
        used one means it was replayed)."""
        row = self.conn.execute(
            f"SELECT {_TOKEN_COLUMNS} FROM oauth_token WHERE refresh_token = ?", (refresh_token,)
        ).fetchone()
        if row is not None:
            return _token(row), True  # type: ignore[return-value]
        used = self.conn.execute(
            "SELECT token_id FROM oauth_used_refresh_token WHERE refresh_token = ?",
            (refresh_token,),
        ).fetchone()
        found = self.token(used[0]) if used is not None else None
        return (found, False) if found is not None else None

    def rotate(
        self, token: Token, new_id: str, refresh_token: str, updated_at: int, expires_at: int
    ) -> Token:
        """The token under a new id and refresh token (the old refresh token is kept as used)."""
        with transaction(self.conn) as conn:
            if token.refresh_token is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO oauth_used_refresh_token (refresh_token, token_id)"
                    " VALUES (?, ?)",
                    (token.refresh_token, new_id),
                )
            conn.execute(
                "UPDATE oauth_used_refresh_token SET token_id = ? WHERE token_id = ?",
                (new_id, token.id),
            )
            conn.execute(
                "UPDATE oauth_token SET id = ?, refresh_token = ?, updated_at = ?, expires_at = ?"
                " WHERE id = ?",
                (new_id, refresh_token, updated_at, expires_at, token.id),
            )
        rotated = self.token(new_id)
        assert rotated is not None
        return rotated

    def delete_token(self, token_id: str) -> None:
        with transaction(self.conn) as conn:
            conn.execute("DELETE FROM oauth_token WHERE id = ?", (token_id,))
            conn.execute("DELETE FROM oauth_used_refresh_token WHERE token_id = ?", (token_id,))

    def delete_account_tokens(self, did: str) -> None:
        with transaction(self.conn) as conn:
            conn.execute(
                "DELETE FROM oauth_used_refresh_token WHERE token_id IN"
                " (SELECT id FROM oauth_token WHERE did = ?)",
                (did,),
            )
            conn.execute("DELETE FROM oauth_token WHERE did = ?", (did,))
