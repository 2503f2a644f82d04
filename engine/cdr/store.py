"""The call-record store: SQLite under ``data_dir``, group commit, crash recovery.

The call controller runs on the reactor thread and tells the store about
each leg: :meth:`CdrStore.leg_started`, :meth:`CdrStore.leg_updated` (it
rang, it was answered) and :meth:`CdrStore.leg_ended`. None of these touch
the database: each copies the record's fields into a queue (one entry per
leg; a later event for the same leg replaces the queued one) and, when the
queue was empty, arms a timer on the injected clock. ``commit_interval``
seconds later (0.05 by default) one transaction writes everything queued.
That *group commit* is the only place the reactor thread writes, and costs
one short transaction however many legs it holds, up to ``max_batch``: a
backlog (a burst, or commits held up by a lock) goes ``max_batch`` legs a
transaction, one after the other, with the reactor's other work in between.

Two tables hold the legs. ``open_legs`` holds the legs in progress (the
calls up now, so it stays small and in cache), each row replaced as the leg
changes. When a leg ends, its row moves to ``legs``, the billing record,
written once and never grown in place (SQLite rows that grow split pages:
that was 4 times slower). Both writes are ``INSERT ... ON CONFLICT DO
UPDATE``, so a leg ended before its start was committed still gets one row.

Durability, the trade-off: a leg is on disk within ``commit_interval`` of
the event, not at the event. A process that is killed loses what it queued
since the last commit (at most ``commit_interval`` of events); what was
committed survives it. The database runs in WAL mode with
``synchronous=NORMAL``: a commit is a write to the WAL file without fsync,
so it survives a crash or kill of the process, but the last commits before
a power loss or kernel crash may be lost (the database itself stays
consistent); fsyncs happen at checkpoints. ``synchronous=FULL`` would fsync
each commit on the reactor thread, 20 times a second. Checkpoints (copying
the WAL into the database, with their fsyncs) run on a thread of their own
(:class:`_Checkpointer`), not inside a commit on the reactor thread.

Crash recovery. Every leg row names its *owner*, the engine process writing
it (``host:pid:start time``), and the ``owners`` table holds each owner's
heartbeat, written every ``heartbeat_interval`` seconds from the injected
clock. Several engine processes may share one ``data_dir`` (SO_REUSEPORT),
so an owner is declared dead only when its heartbeat is older than
``grace`` seconds, or at once when it ran on this host, in this PID
namespace, and its process no longer exists. The open legs of a dead owner
are closed as ``failed``, ending at its last heartbeat, with
:data:`CRASH_REASON`: nothing accepted is lost. :meth:`CdrStore.open` does
this at start (and returns how many legs it closed); every heartbeat does it
again for owners that died while this process runs (an engine restarted in
a new PID namespace, or on another host, is recognised by its silence).
A leg that its owner later ends after all (it was only stalled past the
grace period) gets its real outcome back: the owner's write replaces the row.

Errors: a commit that fails (the database locked by another process for
longer than ``busy_timeout``, a full disk) is rolled back, logged (rate
limited) and retried at the next interval, with the queue kept: nothing is
dropped, and the reactor never waits long on a lock.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from engine.cdr.migrations import StoreError, migrate
from engine.cdr.record import FIELDS, LegRecord
from engine.ratelog import RateLimitedLog
from engine.sqlite import open_database

__all__ = ["CRASH_REASON", "FILENAME", "SHUTDOWN_REASON", "CdrStore", "Clock", "StoreError"]

log = logging.getLogger("vms.cdr")

FILENAME = "cdr.sqlite"
CRASH_REASON = "engine stopped during the call (crash or kill)"
SHUTDOWN_REASON = "engine shut down during the call"

_COLUMNS = (*FIELDS, "owner")
_QUOTED = [f'"{c}"' for c in _COLUMNS]
_END_AT = _COLUMNS.index("end")


def _upsert(table: str) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(_QUOTED)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
        "ON CONFLICT (call_id, leg) DO UPDATE SET "
        + ", ".join(f"{q} = excluded.{q}" for c, q in zip(_COLUMNS, _QUOTED, strict=True)
                    if c not in ("call_id", "leg", "start"))
    )  # fmt: skip


_UPSERT_OPEN = _upsert("open_legs")
_UPSERT_ENDED = _upsert("legs")
_DELETE_OPEN = "DELETE FROM open_legs WHERE call_id = ? AND leg = ?"
# Close open legs as failed at a time (?1; NULL: the latest time the row knows),
# with a reason (?2): move them from open_legs to legs.
_END = "MAX(start, IFNULL(ringing, 0), IFNULL(answer, 0), IFNULL(?1, 0))"
_AS_FAILED = {
    "outcome": "'failed'",
    "end": _END,
    "duration": f"CASE WHEN answer IS NULL THEN 0 ELSE {_END} - answer END",
    "reason": "?2",
}
_MOVE = (
    f"INSERT OR IGNORE INTO legs ({', '.join(_QUOTED)}) SELECT "
    + ", ".join(_AS_FAILED.get(c, q) for c, q in zip(_COLUMNS, _QUOTED, strict=True))
    + " FROM open_legs WHERE "
)
# When the checkpointer thread runs, SQLite checkpoints on commit only past this.
_FALLBACK_CHECKPOINT_PAGES = 16384
_MOVE_AWAY = "; move the file away to start a new one"
_OF_OWNER = "owner = ?3"
_OF_NOBODY = "owner NOT IN (SELECT owner FROM owners)"
_DELETE_OF_OWNER = "DELETE FROM open_legs WHERE owner = ?"
_DELETE_OF_NOBODY = "DELETE FROM open_legs WHERE " + _OF_NOBODY


class Clock(Protocol):
    """The part of ``twisted.internet.interfaces.IReactorTime`` used here."""

    def seconds(self) -> float: ...

    def callLater(  # noqa: N802 - Twisted's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...


def _row(r: LegRecord, owner: str) -> tuple[Any, ...]:
    # The order of FIELDS, then the owner; by hand, as dataclasses.astuple deep-copies.
    return (r.call_id, r.leg, r.customer, r.caller, r.called, r.destination, r.route,
            r.outcome, r.start, r.answer, r.end, r.duration, r.sip_code, r.billed_to,
            r.ringing, r.action_path, r.other_operator, r.reason, r.sip_call_id, r.peer,
            owner)  # fmt: skip


def _rollback(conn: sqlite3.Connection) -> None:
    # After a failed statement; a rollback that fails too leaves SQLite to undo
    # the transaction, and must not raise into the reactor.
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class CdrStore:
    """Call detail records of one engine process in ``cdr.sqlite``; see the module doc.

    Every method runs on the reactor thread. ``open()`` first; ``close()``
    last. ``leg_*`` raise ValueError for an inconsistent record (a bug in the
    caller) and never touch the disk.

    ``commit_interval``: seconds from the first queued event to its commit.
    ``heartbeat_interval``, ``grace``: how often this owner says it lives,
    and how long another may stay silent before its open legs are closed.
    ``busy_timeout``: how long a commit waits for another process's write
    lock before it is retried at the next interval. ``checkpoint_interval``:
    seconds between WAL checkpoints on the checkpointer thread (None: SQLite
    checkpoints inside commits, every 1,000 pages). ``max_batch``: legs per
    transaction at most. ``owner``: this process's id, ``host:pid:start``
    unless given (tests).
    """

    def __init__(
        self,
        path: Path | str,
        clock: Clock,
        *,
        commit_interval: float = 0.05,
        heartbeat_interval: float = 2.0,
        grace: float = 15.0,
        busy_timeout: float = 0.02,
        checkpoint_interval: float | None = 1.0,
        max_batch: int = 250,
        owner: str | None = None,
    ) -> None:
        if not 0 < commit_interval <= heartbeat_interval < grace:
            raise ValueError("need 0 < commit_interval <= heartbeat_interval < grace")
        self.path = Path(path)
        self.clock = clock
        self.commit_interval = commit_interval
        self.heartbeat_interval = heartbeat_interval
        self.grace = grace
        self.busy_timeout = busy_timeout
        self.checkpoint_interval = checkpoint_interval
        self.max_batch = max_batch
        self.host = socket.gethostname()
        self.pidns = _pid_namespace()
        self.pid = os.getpid()
        self.started = time.time()  # the process's identity, not the injected clock
        self.owner = owner or f"{self.host}:{self.pid}:{self.started:.6f}"
        # Figures for monitoring and the benchmark.
        self.commits = 0
        self.rows_written = 0
        self.failed_commits = 0
        self.last_commit_seconds = 0.0
        self.max_commit_seconds = 0.0
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._commit_call: Any = None
        self._heartbeat_call: Any = None
        self._warn = RateLimitedLog(log, clock)
        self._checkpointer: _Checkpointer | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path | str, clock: Clock, **options: Any) -> CdrStore:
        """The store of an engine's ``data_dir`` (``DATA_DIR/cdr.sqlite``)."""
        return cls(Path(data_dir) / FILENAME, clock, **options)

    # -- life cycle --------------------------------------------------------

    def open(self) -> int:
        """Create or upgrade the database, register this owner, recover dead owners' legs.

        Returns how many open legs of dead owners were closed as failed.
        Blocks (migrations, recovery): call it at start, before taking calls.
        Raises StoreError when the database cannot be used.
        """
        if self._conn is not None:
            raise RuntimeError("the call-record store is already open")
        conn = open_database(self.path, self._migrate, error=StoreError,
                             what="the call records", hint=_MOVE_AWAY, synchronous="NORMAL",
                             timeout=10.0, prepare=self._pragmas)  # fmt: skip
        try:
            self._conn = conn
            self._register()
            closed = self._recover(at_start=True)
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            raise StoreError(f"cannot use the call records {self.path}: {exc}"
                             f"{_MOVE_AWAY}") from exc  # fmt: skip
        except BaseException:
            conn.close()
            self._conn = None
            raise
        conn.execute(f"PRAGMA busy_timeout = {max(1, round(self.busy_timeout * 1000))}")
        self._heartbeat_call = self.clock.callLater(self.heartbeat_interval, self._heartbeat)
        if self.checkpoint_interval is not None:
            self._checkpointer = _Checkpointer(self.path, self.checkpoint_interval)
            self._checkpointer.start()
        return closed

    def _pragmas(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_size_limit = 67108864")
        if self.checkpoint_interval is not None:
            # The checkpointer thread copies the WAL into the database; the
            # reactor thread only does it when that thread falls far behind.
            conn.execute(f"PRAGMA wal_autocheckpoint = {_FALLBACK_CHECKPOINT_PAGES}")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        found, now_at = migrate(conn, self.clock.seconds())
        if found != now_at:
            log.info("%s: call-record schema %d -> %d", self.path, found, now_at)

    def close_open(self, reason: str = SHUTDOWN_REASON) -> int:
        """Close this process's open legs as ``failed`` with ``reason``, now; return how many.

        For a clean shutdown, after the call controller has ended what it
        could. Commits what is queued first. Blocks briefly.
        """
        conn = self._need_conn()
        self.flush()
        conn.execute("PRAGMA busy_timeout = 5000")
        try:
            conn.execute("BEGIN IMMEDIATE")
            count = self._move(conn, self.owner, self.clock.seconds(), reason)
            conn.execute("COMMIT")
        finally:
            _rollback(conn)
            conn.execute(f"PRAGMA busy_timeout = {max(1, round(self.busy_timeout * 1000))}")
        return count

    def close(self) -> None:
        """Commit what is queued, sign off this owner and close the database."""
        conn = self._conn
        if conn is None:
            return
        for call in (self._commit_call, self._heartbeat_call):
            if call is not None and call.active():
                call.cancel()
        self._commit_call = self._heartbeat_call = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        conn.execute("PRAGMA busy_timeout = 5000")  # shutting down: waiting is fine
        if not self._commit():
            log.error("%s: %d call records could not be written at shutdown",
                      self.path, len(self._pending))  # fmt: skip
        try:
            conn.execute("BEGIN IMMEDIATE")
            still_open = conn.execute("SELECT 1 FROM open_legs WHERE owner = ?",
                                      (self.owner,)).fetchone()  # fmt: skip
            if still_open is None:
                conn.execute("DELETE FROM owners WHERE owner = ?", (self.owner,))
            else:  # left for crash recovery, which sees this process gone
                conn.execute("UPDATE owners SET heartbeat = ? WHERE owner = ?",
                             (self.clock.seconds(), self.owner))  # fmt: skip
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("%s: could not sign off owner %s: %s", self.path, self.owner, exc)
        finally:
            _rollback(conn)
            conn.close()
            self._conn = None

    # -- the call controller's API (reactor thread, no I/O) ----------------

    def leg_started(self, record: LegRecord) -> None:
        """A leg began (leg 0: the INVITE arrived; leg N: the INVITE is sent)."""
        record.validate()
        self._queue(record)

    def leg_updated(self, record: LegRecord) -> None:
        """Something changed on an open leg: it rang, it was answered."""
        record.validate()
        self._queue(record)

    def leg_ended(self, record: LegRecord) -> None:
        """A leg ended: ``record.finish(...)`` was called on it."""
        record.validate()
        if record.end is None:
            raise ValueError(f"call detail record {record.call_id!r} leg {record.leg}: "
                             "leg_ended needs a closed record (call record.finish first)")
        self._queue(record)

    @property
    def pending(self) -> int:
        """Legs queued and not yet committed."""
        return len(self._pending)

    def flush(self) -> bool:
        """Commit what is queued now; False when it failed (it stays queued and is retried)."""
        self._need_conn()
        if self._commit_call is not None and self._commit_call.active():
            self._commit_call.cancel()
        self._commit_call = None
        done = self._commit()
        if not done:
            self._arm()
        return done

    # -- inside -------------------------------------------------------------

    def _need_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the call-record store is not open (call open() first)")
        return self._conn

    def _queue(self, record: LegRecord) -> None:
        if self._conn is None:
            raise RuntimeError("the call-record store is not open (call open() first)")
        self._pending[(record.call_id, record.leg)] = _row(record, self.owner)
        if self._commit_call is None:
            self._arm()

    def _arm(self, delay: float | None = None) -> None:
        self._commit_call = self.clock.callLater(
            self.commit_interval if delay is None else delay, self._on_commit_timer)

    def _on_commit_timer(self) -> None:
        self._commit_call = None
        done = self._commit(limit=self.max_batch)
        if self._pending:
            # A backlog (a burst, or commits that failed) is written max_batch
            # legs a commit, letting the reactor serve what waits in between.
            self._arm(0 if done else None)

    def _commit(self, heartbeat: bool = False, limit: int | None = None) -> bool:
        """One transaction: the first ``limit`` queued legs (and the heartbeat).

        True when committed (or nothing to do); False when it failed and
        they stay queued.
        """
        conn = self._need_conn()
        if not self._pending and not heartbeat:
            return True
        keys = None if limit is None or len(self._pending) <= limit else \
            list(itertools.islice(self._pending, limit))  # fmt: skip
        rows = list(self._pending.values()) if keys is None else [self._pending[k] for k in keys]
        began = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                try:
                    self._write(conn, rows)
                except sqlite3.IntegrityError:
                    for row in rows:
                        self._write_one(conn, row)
            if heartbeat:
                self._beat(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            self.failed_commits += 1
            self._warn.warning("commit", "%s: %d call records not written yet (%s); retrying",
                               self.path, len(rows), exc)  # fmt: skip
            return False
        if keys is None:
            self._pending = {}
        else:
            for key in keys:
                del self._pending[key]
        took = time.perf_counter() - began
        self.commits += 1
        self.rows_written += len(rows)
        self.last_commit_seconds = took
        self.max_commit_seconds = max(self.max_commit_seconds, took)
        return True

    @staticmethod
    def _write(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
        # Open legs go to open_legs (replacing the leg's last state); ended ones
        # to legs, and out of open_legs.
        opened: list[tuple[Any, ...]] = []
        ended: list[tuple[Any, ...]] = []
        for row in rows:
            (opened if row[_END_AT] is None else ended).append(row)
        if opened:
            conn.executemany(_UPSERT_OPEN, opened)
        if ended:
            conn.executemany(_UPSERT_ENDED, ended)
            conn.executemany(_DELETE_OPEN, [(row[0], row[1]) for row in ended])

    def _write_one(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
        # A row the schema refuses must not hold back the others forever; records
        # are validated before they are queued, so this is a bug's last resort.
        try:
            self._write(conn, (row,))
        except sqlite3.IntegrityError as exc:
            log.error("%s: call record refused by the schema (%s), dropped: %r",
                      self.path, exc, row)  # fmt: skip

    @staticmethod
    def _move(conn: sqlite3.Connection, owner: str | None, at: float | None, reason: str) -> int:
        """Inside a transaction: close the open legs of ``owner`` (None: of no known owner)."""
        if owner is None:
            moved = conn.execute(_MOVE + _OF_NOBODY, (at, reason)).rowcount
            conn.execute(_DELETE_OF_NOBODY)
        else:
            moved = conn.execute(_MOVE + _OF_OWNER, (at, reason, owner)).rowcount
            conn.execute(_DELETE_OF_OWNER, (owner,))
        return int(moved)

    def _register(self) -> None:
        conn = self._need_conn()
        with_now = (self.owner, self.host, self.pidns, self.pid, self.started,
                    self.clock.seconds())  # fmt: skip
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO owners (owner, host, pidns, pid, started, heartbeat) "
                     "VALUES (?, ?, ?, ?, ?, ?)", with_now)  # fmt: skip
        conn.execute("COMMIT")

    def _beat(self, conn: sqlite3.Connection) -> None:
        now = self.clock.seconds()
        cur = conn.execute("UPDATE owners SET heartbeat = ? WHERE owner = ?", (now, self.owner))
        if cur.rowcount == 0:  # another process took us for dead; we are back
            identity = (self.owner, self.host, self.pidns, self.pid, self.started, now)
            conn.execute("INSERT INTO owners (owner, host, pidns, pid, started, heartbeat) "
                         "VALUES (?, ?, ?, ?, ?, ?)", identity)  # fmt: skip

    def _heartbeat(self) -> None:
        self._heartbeat_call = self.clock.callLater(self.heartbeat_interval, self._heartbeat)
        self._commit(heartbeat=True, limit=self.max_batch)
        try:
            self._recover(at_start=False)
        except sqlite3.Error as exc:
            self._warn.warning("recover", "%s: crash recovery postponed (%s)", self.path, exc)

    def _dead(self, host: str, pidns: str, pid: int, heartbeat: float, now: float) -> bool:
        if now - heartbeat > self.grace:
            return True
        same_namespace = host == self.host and pidns == self.pidns and pidns != ""
        return same_namespace and pid != self.pid and not _pid_alive(pid)

    def _recover(self, at_start: bool) -> int:
        """Close the open legs of dead owners (and, at start, of unknown ones)."""
        conn = self._need_conn()
        now = self.clock.seconds()
        owners = conn.execute("SELECT owner, host, pidns, pid, heartbeat FROM owners "
                              "WHERE owner != ?", (self.owner,)).fetchall()  # fmt: skip
        dead = [(o, hb) for o, host, ns, pid, hb in owners if self._dead(host, ns, pid, hb, now)]
        if not dead and not at_start:
            return 0
        closed = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for owner, heartbeat in dead:
                n = self._move(conn, owner, heartbeat, CRASH_REASON)
                conn.execute("DELETE FROM owners WHERE owner = ?", (owner,))
                if n:
                    log.warning("%s: closed %d open call legs of %s, gone since %s",
                                self.path, n, owner, _utc(heartbeat))  # fmt: skip
                closed += n
            if at_start:  # open legs whose owner row is gone: no heartbeat to end them at
                n = self._move(conn, None, None, CRASH_REASON)
                if n:
                    log.warning("%s: closed %d open call legs of unknown owners", self.path, n)
                closed += n
            conn.execute("COMMIT")
        finally:
            _rollback(conn)
        return closed


class _Checkpointer(threading.Thread):
    """Copies the WAL into the database every ``interval`` seconds, off the reactor thread.

    SQLite's automatic checkpoint runs inside the commit that crosses 1,000
    WAL pages, on the thread that commits: 5 to 8 ms more for that commit
    here, with the fsyncs of ``synchronous=NORMAL``. A PASSIVE checkpoint on
    its own connection waits for no lock and blocks no writer; sqlite3
    releases the GIL while it works. Should this thread fall behind by
    ``_FALLBACK_CHECKPOINT_PAGES`` (64 MB), the writer checkpoints itself
    again. Its timing is housekeeping, so it uses the wall clock.
    """

    def __init__(self, path: Path, interval: float) -> None:
        super().__init__(name=f"cdr-checkpoint {path.name}", daemon=True)
        self.path = path
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        except sqlite3.Error as exc:
            log.warning("%s: no checkpointer (%s); SQLite checkpoints as it commits",
                        self.path, exc)  # fmt: skip
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            while not self._stop_event.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. a disk error: the next one retries
                    log.debug("%s: checkpoint failed: %s", self.path, exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
