"""The mode database schema, as numbered migrations kept in the repository.

``modes.sqlite`` carries a ``schema_version`` table, as ``cdr.sqlite`` does
(:mod:`engine.cdr.migrations`, whose :class:`Migration` and
:func:`schema_version` this reuses). :func:`migrate` applies the pending
migrations in one ``BEGIN IMMEDIATE`` transaction: a failure leaves the
database as it was, and the CLI and engines starting at once take turns. A
database newer than this code is refused, never touched.

To change the schema, append a :class:`Migration` with the next number;
never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

from engine.cdr.migrations import Migration, schema_version
from engine.cdr.migrations import migrate as apply_migrations

__all__ = ["MIGRATIONS", "MODES", "ModeStoreError", "migrate", "schema_version"]

#: A customer's activation state, as the trees' ``mode`` condition names it.
MODES = ("normal", "drs", "continuity")


class ModeStoreError(Exception):
    """The mode database cannot be used; the message says why and what to do."""


_MODE_LIST = ", ".join(f"'{m}'" for m in MODES)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "modes, changes to report, ported numbers, password failures, audit", (
        # One row per customer ever switched; a customer without one is normal.
        f"""CREATE TABLE modes (
            customer TEXT PRIMARY KEY,
            mode     TEXT NOT NULL CHECK (mode IN ({_MODE_LIST})),
            since    REAL NOT NULL,
            until    REAL,
            by       TEXT NOT NULL,
            CHECK (mode != 'normal' OR until IS NULL)
        ) WITHOUT ROWID""",
        # expire_due finds the rows whose end has come without a scan.
        "CREATE INDEX modes_by_until ON modes (until) WHERE until IS NOT NULL",
        # Every change, kept until a watcher takes it to report it (exactly once).
        """CREATE TABLE changes (
            id        INTEGER PRIMARY KEY,
            customer  TEXT NOT NULL,
            via       TEXT NOT NULL,
            old_mode  TEXT NOT NULL, old_since REAL, old_until REAL, old_by TEXT NOT NULL,
            new_mode  TEXT NOT NULL, new_since REAL, new_until REAL, new_by TEXT NOT NULL
        )""",
        "CREATE TABLE ported (number TEXT PRIMARY KEY, at REAL NOT NULL, by TEXT NOT NULL) "
        "WITHOUT ROWID",
        # Wrong DRS passwords, counted by customer and by calling number.
        "CREATE TABLE failures (at REAL NOT NULL, customer TEXT, caller TEXT)",
        "CREATE INDEX failures_by_customer ON failures (customer, at)",
        "CREATE INDEX failures_by_caller ON failures (caller, at)",
        """CREATE TABLE audit (
            id       INTEGER PRIMARY KEY,
            at       REAL NOT NULL,
            customer TEXT,
            caller   TEXT,
            action   TEXT NOT NULL,
            outcome  TEXT NOT NULL,
            via      TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX audit_by_customer ON audit (customer, id)",
        # Moves on every change of a mode or of the ported numbers: engines poll it.
        "CREATE TABLE version (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL)",
        "INSERT INTO version VALUES (1, 0)",
    )),
)  # fmt: skip

def migrate(
    conn: sqlite3.Connection, now: float, migrations: tuple[Migration, ...] = MIGRATIONS
) -> tuple[int, int]:
    """Apply the pending migrations; return (version found, version now)."""

    def newer(found: int, latest: int) -> Exception:
        return ModeStoreError(f"the mode database is at schema version {found}, newer than "
                              f"this engine knows ({latest}); run the newer engine, or restore "
                              "a copy")  # fmt: skip

    return apply_migrations(conn, now, migrations, newer)
