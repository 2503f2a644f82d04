"""The call-record database schema, as numbered migrations kept in the repository.

``cdr.sqlite`` carries a ``schema_version`` table: one row per migration
applied (its number, name and when). :func:`migrate` brings any database,
new (no tables) or old (a lower version), to the last version here, all the
pending migrations in one ``BEGIN IMMEDIATE`` transaction: a failure leaves
the database as it was, and two processes starting at once take turns (the
second finds the work done). A database newer than this code is refused,
never touched. :func:`open_readonly` opens any such database (the call
records, the ACM statistics) for a report, its version checked, never
written.

To change the schema, append a :class:`Migration` with the next number;
never edit one that has shipped. SQL lives here rather than in ``.sql``
files so that it is installed with the package whatever the packaging.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from engine.cdr.record import OUTCOMES

__all__ = ["MIGRATIONS", "Migration", "StoreError", "migrate", "open_readonly", "schema_version"]


class StoreError(Exception):
    """The call-record database cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_OUTCOME_LIST = ", ".join(f"'{o}'" for o in OUTCOMES)

_LEG_COLUMNS = f"""
            call_id        TEXT    NOT NULL,
            leg            INTEGER NOT NULL CHECK (leg >= 0),
            customer       TEXT,
            caller         TEXT,
            called         TEXT    NOT NULL,
            destination    TEXT,
            route          TEXT,
            outcome        TEXT    CHECK (outcome IS NULL OR outcome IN ({_OUTCOME_LIST})),
            start          REAL    NOT NULL,
            answer         REAL,
            "end"          REAL,
            duration       REAL    NOT NULL DEFAULT 0,
            sip_code       INTEGER,
            billed_to      TEXT,
            ringing        REAL,
            action_path    TEXT    NOT NULL DEFAULT '',
            other_operator INTEGER NOT NULL DEFAULT 0,
            reason         TEXT,
            sip_call_id    TEXT,
            peer           TEXT,
            owner          TEXT    NOT NULL"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "legs, open legs and their owners", (
        # Ended legs, the billing record: written once, when the leg ends, so
        # the table only grows at its end (updating rows in place would make
        # them grow and split pages at every end).
        f"""CREATE TABLE legs ({_LEG_COLUMNS},
            CHECK (outcome IS NOT NULL AND "end" IS NOT NULL),
            UNIQUE (call_id, leg)
        )""",
        # Export by time range, in start order, without a sort.
        "CREATE INDEX legs_by_start ON legs (start, call_id, leg)",
        # Legs in progress: small (the calls up now), so churn stays in cache.
        # `owner` is the engine process writing the leg (host:pid:start).
        f"""CREATE TABLE open_legs ({_LEG_COLUMNS},
            PRIMARY KEY (call_id, leg)
        ) WITHOUT ROWID""",
        "CREATE INDEX open_legs_by_owner ON open_legs (owner)",
        # The engine processes writing here, and when each last said it lives.
        """CREATE TABLE owners (
            owner     TEXT    PRIMARY KEY,
            host      TEXT    NOT NULL,
            pidns     TEXT    NOT NULL,
            pid       INTEGER NOT NULL,
            started   REAL    NOT NULL,
            heartbeat REAL    NOT NULL
        )""",
    )),
)  # fmt: skip

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    applied REAL NOT NULL
)"""


def schema_version(conn: sqlite3.Connection) -> int:
    """The version of an open database: 0 when it has no schema_version table."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if found is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def open_readonly(
    path: Path,
    known: int,
    *,
    error: Callable[[str], Exception],
    what: str,
    newer: Callable[[int], Exception],
) -> sqlite3.Connection:
    """An existing ``path`` opened read-only for a report (it never writes the file).

    Its schema must be one of this engine's ``known`` versions: a file with
    none is ``error("PATH is not WHAT ...")``, a newer one ``newer(version)``,
    and an unreadable one ``error("PATH cannot be read as WHAT (...)")``.
    """
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                               timeout=10.0)  # fmt: skip
        version = schema_version(conn)
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise error(f"{path} cannot be read as {what} ({exc})") from None
    if not 0 < version <= known:
        conn.close()
        if version == 0:
            raise error(f"{path} is not {what} (it has no schema version)")
        raise newer(version)
    return conn


def _newer(found: int, latest: int) -> Exception:
    return StoreError(f"the call-record database is at schema version {found}, newer than "
                      f"this engine knows ({latest}); run the newer engine, or restore a copy")


def migrate(
    conn: sqlite3.Connection, now: float, migrations: tuple[Migration, ...] = MIGRATIONS,
    newer: Callable[[int, int], Exception] = _newer,
) -> tuple[int, int]:  # fmt: skip
    """Apply the pending migrations; return (version found, version now).

    ``conn`` must be in autocommit mode (``isolation_level=None``): the
    transaction is this function's. Other databases (``engine.modes``) use
    it with their own migrations and their own ``newer`` refusal.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, ... in order, not {versions}")
    latest = versions[-1] if versions else 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSION_TABLE)
        found = schema_version(conn)
        if found > latest:
            raise newer(found, latest)
        for migration in migrations[found:]:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, name, applied) VALUES (?, ?, ?)",
                         (migration.version, migration.name, now))  # fmt: skip
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found, latest
