"""The directory's tables, as numbered migrations (see `strata.database.migrate`).

`seq` is the position in this directory's export, given by the database as one more than the
highest so far when the operation is inserted. Times are milliseconds since the epoch. A
directory that predates these migrations has the same tables already (hence `IF NOT EXISTS`).
"""

from __future__ import annotations

from typing import Final

from strata.database import Migration, PerEngine, postgres_ddl


def _v1(cid_type: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS operations (
            seq INTEGER PRIMARY KEY,
            did TEXT NOT NULL,
            cid {cid_type} NOT NULL,
            operation TEXT NOT NULL,
            nullified INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        ) STRICT""",
        "CREATE UNIQUE INDEX IF NOT EXISTS operations_did_cid ON operations (did, cid)",
        "CREATE INDEX IF NOT EXISTS operations_did_seq ON operations (did, seq)",
        "CREATE INDEX IF NOT EXISTS operations_created ON operations (created_at, cid)",
        """CREATE TABLE IF NOT EXISTS mirror_cursors (
            source TEXT PRIMARY KEY,
            cursor TEXT NOT NULL
        ) STRICT""",
    )


V1: Final = PerEngine(
    sqlite=_v1("TEXT"),
    # The legacy export pages by (created_at, cid): CIDs compare byte by byte on both engines.
    postgres=tuple(postgres_ddl(statement) for statement in _v1('TEXT COLLATE "C"')),
)

MIGRATIONS: Final[list[Migration]] = [V1]
