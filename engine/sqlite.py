"""Opening the engine's SQLite databases, and their write transactions.

Every store in ``data_dir`` (call records, modes, the ACM directory, its
statistics, the e-mails) opens its file the same way: the folder made, an
autocommit connection (the transactions are the store's own), WAL so that
readers never wait for the writer, the store's ``synchronous`` level, then
its numbered migrations (engine/cdr/migrations.py). A failure closes the
connection and says, in the store's own error, whether the file could not
be opened or could not be used.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["immediate", "open_database"]

log = logging.getLogger("vms.db")


def open_database(
    path: Path,
    migrate: Callable[[sqlite3.Connection], object],
    *,
    error: Callable[[str], Exception],
    what: str,
    hint: str = "",
    synchronous: str = "FULL",
    timeout: float = 5.0,
    busy_timeout: float | None = None,
    check_same_thread: bool = True,
    prepare: Callable[[sqlite3.Connection], object] | None = None,
) -> sqlite3.Connection:
    """``path`` opened, in WAL mode and migrated by ``migrate(conn)``.

    ``what`` names the database in ``error``'s sentence ("cannot open the
    mode database PATH: ..."); ``hint`` follows a database that opened but
    cannot be used. ``timeout``: how long opening and migrating wait for
    another process's lock; ``busy_timeout``: how long everything after
    waits (default: the same). ``prepare(conn)`` runs before the migrations
    (SQL functions they use, more pragmas). Other exceptions (a refusal of a
    newer schema from ``migrate``) close the connection and pass through.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=timeout,
                               check_same_thread=check_same_thread)  # fmt: skip
    except (OSError, sqlite3.Error) as exc:
        raise error(f"cannot open {what} {path}: {exc}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            log.warning("%s: SQLite refused WAL mode (%s); writes may block readers", path, mode)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        if prepare is not None:
            prepare(conn)
        migrate(conn)
        if busy_timeout is not None:
            conn.execute(f"PRAGMA busy_timeout = {max(1, round(busy_timeout * 1000))}")
    except sqlite3.Error as exc:
        conn.close()
        raise error(f"cannot use {what} {path}: {exc}{hint}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, the write lock taken before anything is read.

    Committed when the block ends, rolled back when it raises: another
    process on the same file waits its turn (up to the connection's timeout).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
