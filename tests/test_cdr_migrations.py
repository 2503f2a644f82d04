"""The call-record schema: numbered migrations bring new and old databases to the last version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cdrkit import T0, clock_at, leg, open_store, rows
from engine.cdr.migrations import MIGRATIONS, Migration, StoreError, migrate, schema_version
from engine.cdr.store import CdrStore

LATEST = len(MIGRATIONS)
# A next migration as a future version would ship it, to prove old databases upgrade.
NEXT = Migration(LATEST + 1, "test: a note per leg", (
    "ALTER TABLE legs ADD COLUMN note TEXT",
    "CREATE INDEX legs_by_note ON legs (note)",
))  # fmt: skip


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrations_are_numbered_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def test_a_new_database_gets_every_migration(tmp_path: Path) -> None:
    store = open_store(tmp_path / "cdr.sqlite")
    store.close()
    conn = connect(tmp_path / "cdr.sqlite")
    assert schema_version(conn) == LATEST
    assert {"legs", "open_legs", "owners", "schema_version"} <= tables(conn)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = conn.execute("SELECT version, name, applied FROM schema_version").fetchall()
    assert applied == [(m.version, m.name, T0) for m in MIGRATIONS]


def test_reopening_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    store = open_store(path)
    ended = leg("c1").finish(T0 + 5, "rejected", 404)
    store.leg_ended(ended)
    store.close()
    open_store(path).close()
    conn = connect(path)
    assert schema_version(conn) == LATEST
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == LATEST
    assert list(rows(path)) == [("c1", 0)]


def test_an_old_database_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    store = open_store(path)  # a database of the version shipped today
    store.leg_ended(leg("c1").finish(T0 + 5, "rejected", 404))
    store.close()
    conn = connect(path)
    assert migrate(conn, T0 + 100, (*MIGRATIONS, NEXT)) == (LATEST, LATEST + 1)
    assert schema_version(conn) == LATEST + 1
    row = conn.execute("SELECT call_id, outcome, note FROM legs").fetchone()
    assert row == ("c1", "rejected", None)
    assert migrate(conn, T0 + 200, (*MIGRATIONS, NEXT)) == (LATEST + 1, LATEST + 1)


def test_a_new_database_gets_the_next_migration_too(tmp_path: Path) -> None:
    conn = connect(tmp_path / "cdr.sqlite")
    assert migrate(conn, T0, (*MIGRATIONS, NEXT)) == (0, LATEST + 1)
    assert "note" in {r[1] for r in conn.execute("PRAGMA table_info(legs)")}


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    conn = connect(tmp_path / "cdr.sqlite")
    migrate(conn, T0)
    broken = Migration(LATEST + 1, "test: broken", (
        "CREATE TABLE half_done (x INTEGER)",
        "ALTER TABLE no_such_table ADD COLUMN y TEXT",
    ))  # fmt: skip
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, T0, (*MIGRATIONS, broken))
    assert schema_version(conn) == LATEST
    assert "half_done" not in tables(conn)
    assert not conn.in_transaction


def test_migrations_out_of_order_are_a_programming_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "cdr.sqlite")
    with pytest.raises(ValueError, match="numbered 1, 2"):
        migrate(conn, T0, (NEXT,))


def test_a_database_newer_than_the_engine_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    conn = connect(path)
    migrate(conn, T0, (*MIGRATIONS, NEXT))
    conn.close()
    store = CdrStore(path, clock_at(), checkpoint_interval=None)
    with pytest.raises(StoreError, match=rf"schema version {LATEST + 1}, newer than this engine"):
        store.open()
    assert schema_version(connect(path)) == LATEST + 1


def test_a_file_that_is_not_a_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="move the file away"):
        CdrStore(path, clock_at(), checkpoint_interval=None).open()


def test_two_processes_migrating_at_once_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    first, second = connect(path), connect(path)
    first.execute("BEGIN IMMEDIATE")  # the first starter holds the write lock ...
    second.execute("PRAGMA busy_timeout = 50")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        migrate(second, T0)  # ... so the second waits (here: gives up) without a half schema
    first.execute("ROLLBACK")
    assert migrate(first, T0) == (0, LATEST)
    assert migrate(second, T0) == (LATEST, LATEST)  # finds the work done
