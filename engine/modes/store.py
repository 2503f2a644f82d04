"""Customer modes, ported numbers and the DRS audit: durable and shared, in SQLite.

A customer's mode (normal, DRS, Voice Continuity) must survive restarts and
be the same for the command line, the HTTP API and every engine process on
one ``data_dir``, each change in effect everywhere within a second
(contract.md). It changes rarely and is read on every call, so it lives in
``DATA_DIR/modes.sqlite`` (WAL: readers never wait for a writer) and each
engine keeps a copy that it reloads when :meth:`ModeStore.version` moves
(:mod:`engine.modes.watcher`). The store itself keeps nothing in memory:
every method is one statement or one transaction on the file, so what one
process writes, the next call in another reads.

Every write takes the write lock first (``BEGIN IMMEDIATE``) and reads the
state inside that transaction, so writers queue up: a change's ``old`` is
what it really replaced, and each expiry is done, and returned, by exactly
one process however many call :meth:`ModeStore.expire_due` at once.

Each mode change is also queued in the ``changes`` table until a watcher
takes it (:meth:`ModeStore.take_changes`), so it is reported (logged,
e-mailed) exactly once, whoever made it and however many engines run; a
change made while no engine runs is reported by the next one to start.

Wrong DRS passwords are kept (for a day) by customer and by calling number;
:meth:`ModeStore.locked_until` turns them into the phone path's lockout.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.modes.migrations import MODES, ModeStoreError, migrate
from engine.sites.health import iso
from engine.sqlite import immediate, open_database

__all__ = ["FILENAME", "MODES", "AuditEntry", "ModeChange", "ModeState", "ModeStore",
           "ModeStoreError"]  # fmt: skip

FILENAME = "modes.sqlite"
#: Wrong passwords older than this are forgotten: a lockout only counts recent ones.
FORGET_FAILURES = 86400.0


@dataclass(frozen=True)
class ModeState:
    """A customer's mode, since when, until when (None: no end) and who set it.

    A customer never switched is ``normal`` with ``since`` and ``until`` None
    and ``by`` empty.
    """

    customer: str
    mode: str
    since: float | None
    until: float | None
    by: str


@dataclass(frozen=True)
class ModeChange:
    """One switch of a customer's mode; ``via`` is phone, cli, api or expiry."""

    customer: str
    old: ModeState
    new: ModeState
    via: str


@dataclass(frozen=True)
class AuditEntry:
    at: float
    customer: str | None
    caller: str | None
    action: str
    outcome: str
    via: str
    detail: str


_STATE = "customer, mode, since, until, by"


def _never_set(customer: str) -> ModeState:
    return ModeState(customer, "normal", None, None, "")


def _read(conn: sqlite3.Connection, customer: str) -> ModeState:
    row = conn.execute(f"SELECT {_STATE} FROM modes WHERE customer = ?", (customer,)).fetchone()
    return _never_set(customer) if row is None else ModeState(*row)


def _action(change: ModeChange) -> tuple[str, str]:
    """The audit row's action and detail for a change."""
    old, new = change.old, change.new
    if new.mode == "normal":
        return f"{old.mode}-{'expire' if change.via == 'expiry' else 'deactivate'}", \
            f"by {new.by}"  # fmt: skip
    detail = f"by {new.by}; " + (f"until {iso(new.until)}" if new.until is not None else "no end")
    if old.mode == new.mode:
        detail += "; a new end"
    elif old.mode != "normal":
        detail += f"; replaces {old.mode}"
    return f"{new.mode}-activate", detail


class ModeStore:
    """The modes of ``path`` (``DATA_DIR/modes.sqlite``); see the module doc.

    ``open()`` first, ``close()`` last (or ``with store:``). ``clock`` gives
    "now" for every time written or compared. ``busy_timeout``: how long a
    write waits for another process's write lock before sqlite3.Error.
    """

    def __init__(
        self, path: Path, clock: Callable[[], float] = time.time, *, busy_timeout: float = 5.0
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def in_data_dir(
        cls, data_dir: Path, clock: Callable[[], float] = time.time, **options: Any
    ) -> ModeStore:
        """The store of an engine's ``data_dir``."""
        return cls(Path(data_dir) / FILENAME, clock, **options)

    # -- life cycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Create or upgrade the database; ModeStoreError when it cannot be used."""
        if self._conn is not None:
            raise RuntimeError("the mode store is already open")
        # Writes are rare and each one is a customer's promise: fsync every commit.
        self._conn = open_database(
            self.path, lambda conn: migrate(conn, self.clock()), error=ModeStoreError,
            what="the mode database", hint="; move the file away to start a new one",
            synchronous="FULL", timeout=self.busy_timeout,
        )  # fmt: skip

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ModeStore:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the mode store is not open; call open() first")
        return self._conn

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, the lock taken before anything is read."""
        return immediate(self._db())

    # -- modes --------------------------------------------------------------------------

    def get(self, customer: str) -> ModeState:
        return _read(self._db(), customer)

    def all(self) -> dict[str, ModeState]:
        """Every customer not in normal mode."""
        rows = self._db().execute(f"SELECT {_STATE} FROM modes WHERE mode != 'normal'")
        return {row[0]: ModeState(*row) for row in rows}

    def set_mode(
        self, customer: str, mode: str, until: float | None, by: str, via: str
    ) -> ModeChange | None:
        """Switch ``customer`` to ``mode`` until ``until`` (None: no end); None if it already was.

        The same mode with another end is a change that keeps ``since``.
        ValueError for an unknown mode, an end for normal, or an end not in the future.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode '{mode}' (modes: {', '.join(MODES)})")
        if mode == "normal" and until is not None:
            raise ValueError("normal mode has no end")
        with self._write() as conn:
            now = self.clock()
            if until is not None and until <= now:
                raise ValueError(f"the end {iso(until)} is not in the future")
            old = _read(conn, customer)
            if (old.mode, old.until) == (mode, until):
                return None
            since = old.since if old.mode == mode else now
            change = ModeChange(customer, old, ModeState(customer, mode, since, until, by), via)
            self._record(conn, change, now)
        return change

    def expire_due(self) -> list[ModeChange]:
        """Switch back to normal every mode whose end has come; each by exactly one caller."""
        now = self.clock()
        # Most polls find nothing due: a read, which takes no lock.
        if self._db().execute("SELECT 1 FROM modes WHERE until <= ?", (now,)).fetchone() is None:
            return []
        changes = []
        with self._write() as conn:
            rows = conn.execute(f"SELECT {_STATE} FROM modes WHERE until <= ? "
                                "ORDER BY until, customer", (now,)).fetchall()  # fmt: skip
            for row in rows:
                old = ModeState(*row)
                new = ModeState(old.customer, "normal", now, None, "expiry")
                change = ModeChange(old.customer, old, new, "expiry")
                self._record(conn, change, now)
                changes.append(change)
        return changes

    def _record(self, conn: sqlite3.Connection, change: ModeChange, now: float) -> None:
        new, old = change.new, change.old
        conn.execute(
            f"INSERT INTO modes ({_STATE}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (customer) DO "
            "UPDATE SET mode = excluded.mode, since = excluded.since, until = excluded.until, "
            "by = excluded.by",
            (new.customer, new.mode, new.since, new.until, new.by),
        )
        conn.execute(
            "INSERT INTO changes (customer, via, old_mode, old_since, old_until, old_by, "
            "new_mode, new_since, new_until, new_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (change.customer, change.via, old.mode, old.since, old.until, old.by,
             new.mode, new.since, new.until, new.by),
        )  # fmt: skip
        action, detail = _action(change)
        self._audit(conn, now, change.customer, None, action, "ok", change.via, detail)
        conn.execute("UPDATE version SET n = n + 1")

    def take_changes(self) -> list[ModeChange]:
        """The mode changes not reported yet, oldest first, each given to one caller only."""
        if self._db().execute("SELECT 1 FROM changes").fetchone() is None:
            return []
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, customer, via, old_mode, old_since, old_until, old_by, "
                "new_mode, new_since, new_until, new_by FROM changes ORDER BY id"
            ).fetchall()
            if rows:
                conn.execute("DELETE FROM changes WHERE id <= ?", (rows[-1][0],))
        return [ModeChange(r[1], ModeState(r[1], *r[3:7]), ModeState(r[1], *r[7:11]), r[2])
                for r in rows]  # fmt: skip

    def version(self) -> int:
        """Moves on every change of a mode or of the ported numbers."""
        return int(self._db().execute("SELECT n FROM version").fetchone()[0])

    # -- audit --------------------------------------------------------------------------

    def audit(
        self,
        customer: str | None,
        caller: str | None,
        action: str,
        outcome: str,
        via: str,
        detail: str = "",
    ) -> None:
        self._audit(self._db(), self.clock(), customer, caller, action, outcome, via, detail)

    @staticmethod
    def _audit(conn: sqlite3.Connection, at: float, *fields: str | None) -> None:
        conn.execute("INSERT INTO audit (at, customer, caller, action, outcome, via, detail) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (at, *fields))  # fmt: skip

    def audit_log(
        self, customer: str | None = None, since: float | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries, newest last: of ``customer``, from ``since``, the last ``limit``."""
        where: list[str] = []
        args: list[object] = []
        if customer is not None:
            where.append("customer = ?")
            args.append(customer)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        sql = "SELECT at, customer, caller, action, outcome, via, detail FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            if limit < 0:
                raise ValueError("limit must be 0 or more")
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._db().execute(sql, args).fetchall()
        return [AuditEntry(*row) for row in reversed(rows)]

    # -- DRS phone-path lockout ---------------------------------------------------------

    def failed_attempt(self, customer: str | None, caller: str | None) -> None:
        """A wrong password, counted for the customer and for the calling number (when known).

        Attempts refused because the path was locked should not be counted
        here: each would push the end of the lock further.
        """
        with self._write() as conn:
            now = self.clock()
            conn.execute("DELETE FROM failures WHERE at < ?", (now - FORGET_FAILURES,))
            conn.execute("INSERT INTO failures VALUES (?, ?, ?)", (now, customer, caller))

    def locked_until(
        self, customer: str | None, caller: str | None, attempts: int = 3, minutes: float = 15
    ) -> float | None:
        """When the phone path's lock ends for this customer or caller; None when it is open.

        ``attempts`` wrong passwords within ``minutes`` of each other, for the
        customer or from the caller, lock it for ``minutes`` from the last of
        them, whatever comes next.
        """
        return self._lock_end(self._db(), self.clock(), customer, caller, attempts, minutes)

    def begin_attempt(
        self, customer: str, caller: str, attempts: int = 3, minutes: float = 15
    ) -> tuple[int | None, float | None]:
        """Take a password attempt: ``(attempt, None)``, or ``(None, lock end)`` when locked.

        The attempt is counted as a failure *before* the password is checked,
        in the same transaction as the lock check, so calls racing on one
        customer (in one engine or several) cannot get more tries than the
        limit; ``attempt_succeeded`` takes it back when the password was right.
        """
        with self._write() as conn:
            now = self.clock()
            end = self._lock_end(conn, now, customer, caller, attempts, minutes)
            if end is not None:
                return None, end
            conn.execute("DELETE FROM failures WHERE at < ?", (now - FORGET_FAILURES,))
            cursor = conn.execute("INSERT INTO failures VALUES (?, ?, ?)",
                                  (now, customer, caller))  # fmt: skip
            return cursor.lastrowid, None

    def attempt_succeeded(self, attempt: int, customer: str) -> None:
        """The password of ``attempt`` was right: it and the customer's failures are forgotten."""
        with self._write() as conn:
            conn.execute("DELETE FROM failures WHERE rowid = ? OR customer = ?",
                         (attempt, customer))  # fmt: skip

    @staticmethod
    def _lock_end(conn: sqlite3.Connection, now: float, customer: str | None,
                  caller: str | None, attempts: int, minutes: float) -> float | None:  # fmt: skip
        if attempts < 1:
            raise ValueError("attempts must be 1 or more")
        window = minutes * 60.0
        ends = []
        for column, key in (("customer", customer), ("caller", caller)):
            if key is None:
                continue
            # A lock still on began less than a window ago, after a run shorter than one.
            times = [r[0] for r in conn.execute(
                f"SELECT at FROM failures WHERE {column} = ? AND at > ? ORDER BY at",
                (key, now - 2 * window))]  # fmt: skip
            ends += [times[i] + window for i in range(attempts - 1, len(times))
                     if times[i] - times[i - attempts + 1] <= window]  # fmt: skip
        end = max(ends, default=None)
        return end if end is not None and end > now else None

    def clear_attempts(self, customer: str) -> None:
        """Forget the customer's wrong passwords (after a right one)."""
        self._db().execute("DELETE FROM failures WHERE customer = ?", (customer,))

    # -- numbers ported away ------------------------------------------------------------

    def set_ported(self, number: str, ported: bool, by: str, via: str) -> bool:
        """Mark ``number`` (E.164) ported away or back; True when that changed something."""
        with self._write() as conn:
            now = self.clock()
            if ported:
                cursor = conn.execute("INSERT OR IGNORE INTO ported VALUES (?, ?, ?)",
                                      (number, now, by))  # fmt: skip
            else:
                cursor = conn.execute("DELETE FROM ported WHERE number = ?", (number,))
            if cursor.rowcount == 0:
                return False
            action = "number-port-out" if ported else "number-port-in"
            self._audit(conn, now, None, None, action, "ok", via, f"{number} by {by}")
            conn.execute("UPDATE version SET n = n + 1")
        return True

    def ported(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._db().execute("SELECT number FROM ported"))
