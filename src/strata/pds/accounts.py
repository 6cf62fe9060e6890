"""The PDS's service database: accounts, sessions, app passwords, invite codes, email tokens.

Repository contents live in each account's own store (`actor_store`); this database knows who
the accounts are and how they sign in. The firehose sequence shares the file (`sequencer`), so
that an event and the repository root it announces are committed together.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strata.storage import connect_sqlite, transaction

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS account (
    did TEXT PRIMARY KEY,
    handle TEXT UNIQUE,
    email TEXT UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deactivated_at INTEGER,
    delete_after INTEGER,
    takedown_ref TEXT,
    invites_disabled INTEGER NOT NULL DEFAULT 0,
    email_confirmed_at INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS repo_root (
    did TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    rev TEXT NOT NULL,
    indexed_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS refresh_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    app_password_name TEXT,
    next_id TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS refresh_token_did ON refresh_token (did);
CREATE TABLE IF NOT EXISTS app_password (
    did TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    privileged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (did, name)
) STRICT;
CREATE TABLE IF NOT EXISTS invite_code (
    code TEXT PRIMARY KEY,
    available_uses INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    for_account TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS invite_code_use (
    code TEXT NOT NULL,
    used_by TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    PRIMARY KEY (code, used_by)
) STRICT;
CREATE TABLE IF NOT EXISTS email_token (
    purpose TEXT NOT NULL,
    did TEXT NOT NULL,
    token TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (purpose, did)
) STRICT;
"""

EMAIL_TOKEN_LIFETIME_MS: Final = 15 * 60 * 1000
REFRESH_GRACE_MS: Final = 2 * 3600 * 1000


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Account:
    """One account row."""

    did: str
    handle: str | None
    email: str | None
    password_hash: str
    created_at: int
    deactivated_at: int | None
    delete_after: int | None
    takedown_ref: str | None
    invites_disabled: bool
    email_confirmed_at: int | None

    @property
    def active(self) -> bool:
        return self.deactivated_at is None and self.takedown_ref is None

    @property
    def status(self) -> str | None:
        """The `#account` event status: None when active."""
        if self.takedown_ref is not None:
            return "takendown"
        if self.deactivated_at is not None:
            return "deactivated"
        return None


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: str
    did: str
    expires_at: int
    app_password_name: str | None
    next_id: str | None
    privileged: bool


@dataclass(frozen=True, slots=True)
class AppPassword:
    name: str
    created_at: int
    privileged: bool


@dataclass(frozen=True, slots=True)
class InviteCode:
    code: str
    available_uses: int
    disabled: bool
    for_account: str
    created_by: str
    created_at: int
    uses: list[tuple[str, int]]


_ACCOUNT_COLUMNS: Final = (
    "did, handle, email, password_hash, created_at, deactivated_at, delete_after, "
    "takedown_ref, invites_disabled, email_confirmed_at"
)


def _account(row: tuple[object, ...] | None) -> Account | None:
    if row is None:
        return None
    values = list(row)
    values[8] = bool(values[8])
    return Account(*values)  # type: ignore[arg-type]


class AccountStore:
    """The service database; used from the event loop's thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = connect_sqlite(path)
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One durable transaction; rolled back if the block raises."""
        return transaction(self.conn)

    # Accounts

    def get(self, did: str) -> Account | None:
        row = self.conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE did = ?", (did,)
        ).fetchone()
        return _account(row)

    def by_handle(self, handle: str) -> Account | None:
        row = self.conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE handle = ?", (handle.lower(),)
        ).fetchone()
        return _account(row)

    def by_email(self, email: str) -> Account | None:
        row = self.conn.execute(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE email = ?", (email.lower(),)
        ).fetchone()
        return _account(row)

    def lookup(self, identifier: str) -> Account | None:
        """An account by DID, handle or email, as createSession accepts them."""
        if identifier.startswith("did:"):
            return self.get(identifier)
        if "@" in identifier:
            return self.by_email(identifier)
        return self.by_handle(identifier)

    def create(
        self,
        conn: sqlite3.Connection,
        did: str,
        handle: str,
        email: str | None,
        password_hash: str,
        deactivated: bool,
    ) -> None:
        now = now_ms()
        conn.execute(
            "INSERT INTO account (did, handle, email, password_hash, created_at, deactivated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                did,
                handle.lower(),
                email.lower() if email else None,
                password_hash,
                now,
                now if deactivated else None,
            ),
        )

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM account").fetchone()[0])

    def set_handle(self, did: str, handle: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE account SET handle = ? WHERE did = ?", (handle.lower(), did))

    def set_password(self, did: str, password_hash: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE account SET password_hash = ? WHERE did = ?", (password_hash, did))

    def set_deactivated(self, did: str, deactivated: bool, delete_after: int | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE account SET deactivated_at = ?, delete_after = ? WHERE did = ?",
                (now_ms() if deactivated else None, delete_after, did),
            )

    def set_takedown(self, did: str, ref: str | None) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE account SET takedown_ref = ? WHERE did = ?", (ref, did))

    def delete(self, did: str) -> None:
        with self.transaction() as conn:
            for table in ("account", "repo_root", "refresh_token", "app_password", "email_token"):
                conn.execute(f"DELETE FROM {table} WHERE did = ?", (did,))

    # Repository roots as announced on the firehose, for listRepos and getRepoStatus

    def root(self, did: str) -> tuple[str, str] | None:
        row = self.conn.execute("SELECT cid, rev FROM repo_root WHERE did = ?", (did,)).fetchone()
        return (row[0], row[1]) if row else None

    def list_repos(self, after: str | None, limit: int) -> list[tuple[Account, str, str]]:
        """Accounts with a repository, by DID, after the cursor `after`."""
        rows = self.conn.execute(
            f"SELECT {', '.join('a.' + c for c in _ACCOUNT_COLUMNS.split(', '))}, r.cid, r.rev"
            " FROM account a JOIN repo_root r ON r.did = a.did"
            " WHERE a.did > ? ORDER BY a.did LIMIT ?",
            (after or "", limit),
        ).fetchall()
        out = []
        for row in rows:
            account = _account(row[:10])
            assert account is not None
            out.append((account, row[10], row[11]))
        return out

    # Sessions

    def store_refresh_token(
        self, jti: str, did: str, expires_at: int, app_password_name: str | None
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO refresh_token (id, did, expires_at, app_password_name)"
                " VALUES (?, ?, ?, ?)",
                (jti, did, expires_at, app_password_name),
            )

    def refresh_token(self, jti: str) -> RefreshToken | None:
        row = self.conn.execute(
            "SELECT t.id, t.did, t.expires_at, t.app_password_name, t.next_id, p.privileged"
            " FROM refresh_token t LEFT JOIN app_password p"
            " ON p.did = t.did AND p.name = t.app_password_name WHERE t.id = ?",
            (jti,),
        ).fetchone()
        if row is None:
            return None
        return RefreshToken(row[0], row[1], row[2], row[3], row[4], bool(row[5]))

    def rotate_refresh_token(self, old: RefreshToken, next_id: str) -> str:
        """Mark `old` as replaced by `next_id` and shorten its life to the grace period.

        Returns the id actually chosen: a token refreshed twice within the grace period
        (a client retrying) gets the same successor both times.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT next_id FROM refresh_token WHERE id = ?", (old.id,)
            ).fetchone()
            if row is not None and row[0] is not None:
                return str(row[0])
            grace = min(old.expires_at, now_ms() + REFRESH_GRACE_MS)
            conn.execute(
                "UPDATE refresh_token SET next_id = ?, expires_at = ? WHERE id = ?",
                (next_id, grace, old.id),
            )
            conn.execute(
                "DELETE FROM refresh_token WHERE did = ? AND expires_at <= ?", (old.did, now_ms())
            )
        return next_id

    def revoke_refresh_token(self, jti: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM refresh_token WHERE id = ?", (jti,))

    # App passwords

    def add_app_password(self, did: str, name: str, password_hash: str, privileged: bool) -> int:
        created = now_ms()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO app_password (did, name, password_hash, created_at, privileged)"
                " VALUES (?, ?, ?, ?, ?)",
                (did, name, password_hash, created, int(privileged)),
            )
        return created

    def app_password_hashes(self, did: str) -> list[tuple[str, str, bool]]:
        """(name, hash, privileged) of every app password of `did`."""
        rows = self.conn.execute(
            "SELECT name, password_hash, privileged FROM app_password WHERE did = ?", (did,)
        ).fetchall()
        return [(r[0], r[1], bool(r[2])) for r in rows]

    def list_app_passwords(self, did: str) -> list[AppPassword]:
        rows = self.conn.execute(
            "SELECT name, created_at, privileged FROM app_password WHERE did = ?"
            " ORDER BY created_at",
            (did,),
        ).fetchall()
        return [AppPassword(r[0], r[1], bool(r[2])) for r in rows]

    def revoke_app_password(self, did: str, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM app_password WHERE did = ? AND name = ?", (did, name))
            conn.execute(
                "DELETE FROM refresh_token WHERE did = ? AND app_password_name = ?", (did, name)
            )

    # Invite codes

    def create_invite_codes(
        self, for_account: str, created_by: str, count: int, uses: int, hostname: str
    ) -> list[str]:
        prefix = hostname.replace(".", "-")
        codes = [f"{prefix}-{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(count)]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO invite_code"
                " (code, available_uses, for_account, created_by, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(code, uses, for_account, created_by, now_ms()) for code in codes],
            )
        return codes

    def invite_available(self, code: str) -> bool:
        row = self.conn.execute(
            "SELECT c.available_uses, c.disabled, count(u.used_by) FROM invite_code c"
            " LEFT JOIN invite_code_use u ON u.code = c.code WHERE c.code = ? GROUP BY c.code",
            (code,),
        ).fetchone()
        return row is not None and not row[1] and row[2] < row[0]

    def use_invite(self, conn: sqlite3.Connection, code: str, did: str) -> None:
        conn.execute(
            "INSERT INTO invite_code_use (code, used_by, used_at) VALUES (?, ?, ?)",
            (code, did, now_ms()),
        )

    def invite_codes(self, for_account: str | None = None) -> list[InviteCode]:
        sql = (
            "SELECT code, available_uses, disabled, for_account, created_by, created_at"
            " FROM invite_code"
        )
        args: tuple[str, ...] = ()
        if for_account is not None:
            sql += " WHERE for_account = ?"
            args = (for_account,)
        out = []
        for row in self.conn.execute(sql + " ORDER BY created_at DESC", args).fetchall():
            uses = self.conn.execute(
                "SELECT used_by, used_at FROM invite_code_use WHERE code = ?", (row[0],)
            ).fetchall()
            out.append(
                InviteCode(
                    row[0],
                    row[1],
                    bool(row[2]),
                    row[3],
                    row[4],
                    row[5],
                    [(u[0], u[1]) for u in uses],
                )
            )
        return out

    def disable_invite_codes(self, codes: list[str], accounts: list[str]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE invite_code SET disabled = 1 WHERE code = ?", [(c,) for c in codes]
            )
            conn.executemany(
                "UPDATE invite_code SET disabled = 1 WHERE for_account = ?",
                [(a,) for a in accounts],
            )

    def set_invites_disabled(self, did: str, disabled: bool) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE account SET invites_disabled = ? WHERE did = ?", (int(disabled), did)
            )

    # Email tokens (confirmations, password reset, PLC operation signature, account deletion)

    def new_email_token(self, purpose: str, did: str) -> str:
        """A fresh one-time token for `purpose`, replacing any earlier one."""
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        token = f"{raw[:5]}-{raw[5:]}"
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO email_token (purpose, did, token, requested_at)"
                " VALUES (?, ?, ?, ?)",
                (purpose, did, token, now_ms()),
            )
        return token

    def check_email_token(self, purpose: str, did: str, token: str) -> str | None:
        """None if `token` is the live token of `did` for `purpose`, else why it is refused;
        the token stays."""
        row = self.conn.execute(
            "SELECT token, requested_at FROM email_token WHERE purpose = ? AND did = ?",
            (purpose, did),
        ).fetchone()
        if row is None or row[0] != token.upper():
            return "Token is invalid"
        if now_ms() - row[1] > EMAIL_TOKEN_LIFETIME_MS:
            return "Token is expired"
        return None

    def take_email_token(self, purpose: str, did: str, token: str) -> str | None:
        """Consume a token; None if it matches, else the reason it is refused."""
        refused = self.check_email_token(purpose, did, token)
        if refused is None:
            with self.transaction() as conn:
                conn.execute(
                    "DELETE FROM email_token WHERE purpose = ? AND did = ?", (purpose, did)
                )
        return refused

    def email_token_did(self, purpose: str, token: str) -> str | None:
        """The account a token for `purpose` was mailed to, live or expired."""
        row = self.conn.execute(
            "SELECT did FROM email_token WHERE purpose = ? AND token = ?",
            (purpose, token.upper()),
        ).fetchone()
        return str(row[0]) if row else None

    def confirm_email(self, did: str, purpose: str) -> None:
        """Mark the account's email as confirmed and consume the token for `purpose`."""
        with self.transaction() as conn:
            conn.execute("UPDATE account SET email_confirmed_at = ? WHERE did = ?", (now_ms(), did))
            conn.execute("DELETE FROM email_token WHERE purpose = ? AND did = ?", (purpose, did))

    def set_email(self, did: str, email: str) -> None:
        """Change the account's email (unconfirmed again); every token mailed to the old one
        is void."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE account SET email = ?, email_confirmed_at = NULL WHERE did = ?",
                (email.lower(), did),
            )
            conn.execute("DELETE FROM email_token WHERE did = ?", (did,))

    def reset_password(self, did: str, password_hash: str, purpose: str) -> None:
        """Set a new password, consume the token for `purpose` and end every session."""
        with self.transaction() as conn:
            conn.execute("UPDATE account SET password_hash = ? WHERE did = ?", (password_hash, did))
            conn.execute("DELETE FROM email_token WHERE purpose = ? AND did = ?", (purpose, did))
            conn.execute("DELETE FROM refresh_token WHERE did = ?", (did,))
