"""ACM statistics store: every event in SQLite (``DATA_DIR/acm-stats.sqlite``), figures on demand.

The call queue and the e-mail desk hand events to :meth:`StatsStore.record`
on the reactor thread. It never touches the disk and never raises: the
event is appended to a list and, when the list was empty, a timer is armed
on the injected clock; ``flush_interval`` seconds later (0.5 by default)
one transaction appends the whole batch (group commit, as the call records
do in engine/cdr/store.py, whose clock protocol and migrations this
reuses). Figures are not kept up to date as events come: :meth:`report`
reads a window's events back and computes them with
:func:`engine.acm.report.compute`, so a new figure or a corrected
definition applies to the past as well.

Durability: the database is in WAL mode with ``synchronous=NORMAL``. A clean
stop (:meth:`StatsStore.close`) writes everything accepted. A crash or kill
of the process loses at most the batch not yet flushed (``flush_interval``
seconds of events); a power loss may also lose the last commits before it
(the database stays consistent). A commit that fails (a lock held too long,
a full disk) is rolled back, logged and retried with the batch kept, up to
``max_pending`` events; past that new events are dropped, and logged, rather
than growing memory without bound.

Retention: events older than ``keep_days`` (400 by default, about 13
months) are deleted by the flush timer, at most one purge an hour, in
transactions of ``purge_batch`` events (a few milliseconds each; a backlog
goes on batch by batch, one per ``flush_interval``), so the file stops
growing (SQLite reuses the freed pages; it does not shrink). Each
operator's last state event before the cutoff is kept, so that its state at
the start of any window inside the retention stays right; windows starting
before the cutoff lack the deleted events.

Reading: :func:`open_readonly` and :func:`read_events` serve ``vms stats``,
which runs beside the engine (WAL readers do not block the writer), and the
API, which reads in a worker thread with :meth:`StatsStore.snapshot` for the
events not committed yet.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from dataclasses import astuple
from pathlib import Path
from typing import Any

from engine.acm.events import KINDS, AcmEvent
from engine.acm.model import AcmSettings
from engine.acm.report import CHANNELS, Report, compute
from engine.cdr.migrations import Migration, migrate
from engine.cdr.migrations import open_readonly as open_readonly_database
from engine.cdr.store import Clock
from engine.ratelog import RateLimitedLog
from engine.sqlite import open_database

__all__ = ["FILENAME", "MIGRATIONS", "StatsError", "StatsStore", "open_readonly", "read_events"]

log = logging.getLogger("vms.acm.stats")

FILENAME = "acm-stats.sqlite"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "acm events", (
        # One row per AcmEvent, appended, never updated.
        """CREATE TABLE events (
            id       INTEGER PRIMARY KEY,
            at       REAL NOT NULL,
            customer TEXT NOT NULL,
            kind     TEXT NOT NULL,
            channel  TEXT NOT NULL,
            "group"  TEXT NOT NULL DEFAULT '',
            contact  TEXT NOT NULL DEFAULT '',
            operator TEXT NOT NULL DEFAULT '',
            detail   TEXT NOT NULL DEFAULT ''
        )""",
        # A customer's window of time.
        "CREATE INDEX events_by_time ON events (customer, at)",
        # Each operator's state at the start of a window: its last state event before it.
        "CREATE INDEX operator_states ON events (customer, operator, at) WHERE kind = 'operator'",
    )),
    Migration(2, "retention", (
        # The events older than the retention, oldest first (built once, at the upgrade).
        "CREATE INDEX events_by_age ON events (at)",
    )),
)  # fmt: skip

_COLUMNS = 'at, customer, kind, channel, "group", contact, operator, detail'
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
# The window's events, and before them each operator's last state event (?1 customer,
# ?2 since, ?3 until, ?4 the last id to read), in the order they were recorded. The
# customer's operators are found by skipping through the index operator_states, one
# lookup each (not a scan of all their state events), and so is each one's last state.
_WINDOW = f"""
WITH RECURSIVE operators(name) AS (
    SELECT (SELECT operator FROM events WHERE customer = ?1 AND kind = 'operator'
            ORDER BY operator LIMIT 1)
    UNION ALL
    SELECT (SELECT operator FROM events WHERE customer = ?1 AND kind = 'operator'
            AND operator > operators.name ORDER BY operator LIMIT 1)
    FROM operators WHERE name IS NOT NULL
)
SELECT id, {_COLUMNS} FROM events WHERE customer = ?1 AND at >= ?2 AND at < ?3 AND id <= ?4
UNION ALL
SELECT id, {_COLUMNS} FROM events WHERE id IN (
    SELECT (SELECT id FROM events WHERE customer = ?1 AND kind = 'operator'
            AND operator = operators.name AND at < ?2 AND id <= ?4
            ORDER BY at DESC, id DESC LIMIT 1)
    FROM operators WHERE name IS NOT NULL
)
ORDER BY at, id"""
# Up to ?2 events older than ?1, oldest first, except each operator's last state event
# before ?1 (its state at the start of any window from ?1 on).
_PURGE = """
DELETE FROM events WHERE id IN (
    SELECT id FROM events AS old WHERE at < ?1 AND (kind != 'operator' OR EXISTS (
        SELECT 1 FROM events WHERE customer = old.customer AND kind = 'operator'
        AND operator = old.operator AND at >= old.at AND at < ?1
        AND (at > old.at OR id > old.id)))
    ORDER BY at LIMIT ?2
)"""
_EVERY_ID = 2**63 - 1


class StatsError(Exception):
    """The statistics database cannot be used; the message says why and what to do."""


def _newer(found: int, latest: int) -> Exception:
    return StatsError(f"the ACM statistics database is at schema version {found}, newer "
                      f"than this engine knows ({latest}); run the newer engine, or restore "
                      "a copy")  # fmt: skip


def read_events(
    conn: sqlite3.Connection, customer: str, since: float, until: float,
    upto: int | None = None,
) -> list[AcmEvent]:  # fmt: skip
    """The customer's events in ``since <= at < until``, with each operator's state at ``since``.

    ``upto``: only the events of id ``upto`` or less (those committed when a
    :meth:`StatsStore.snapshot` was taken); every one by default.
    """
    last = _EVERY_ID if upto is None else upto
    return [AcmEvent(*row[1:]) for row in conn.execute(_WINDOW, (customer, since, until, last))]


def open_readonly(path: Path) -> sqlite3.Connection:
    """``path`` opened read-only for reports; StatsError when it is missing or unusable."""
    if not path.is_file():
        raise StatsError(f"there are no ACM statistics in {path.parent} (no {path.name}); "
                         "the engine writes them once its queues handle contacts")  # fmt: skip
    known = len(MIGRATIONS)
    return open_readonly_database(path, known, error=StatsError,
                                  what="an ACM statistics database",
                                  newer=lambda version: _newer(version, known))  # fmt: skip


class StatsStore:
    """The ACM events of one engine process, an :class:`~engine.acm.events.EventSink`.

    ``open()`` first, ``close()`` last; all on the reactor thread. Events
    recorded before ``open()`` wait for it; events recorded after ``close()``
    are dropped with a warning. ``busy_timeout``: how long a commit waits for
    another process's write lock before it is retried at the next interval.
    ``keep_days``: the retention (None: keep everything); ``purge_every``
    seconds between purges, ``purge_batch`` events deleted per transaction.
    """

    def __init__(
        self,
        path: Path | str,
        clock: Clock,
        *,
        flush_interval: float = 0.5,
        busy_timeout: float = 0.05,
        max_batch: int = 5000,
        max_pending: int = 200_000,
        keep_days: float | None = 400,
        purge_every: float = 3600.0,
        purge_batch: int = 1000,
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_pending < max_batch:
            raise ValueError("need flush_interval > 0 and 1 <= max_batch <= max_pending")
        if (keep_days is not None and keep_days <= 0) or purge_every <= 0 or purge_batch < 1:
            raise ValueError("need keep_days > 0 (or None), purge_every > 0 and purge_batch >= 1")
        self.path = Path(path)
        self.clock = clock
        self.flush_interval = flush_interval
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.keep_days = keep_days
        self.purge_every = purge_every
        self.purge_batch = purge_batch
        self.dropped = 0
        self.purged = 0
        self._next_purge = 0.0  # the first flush after open() purges
        self._pending: list[AcmEvent] = []
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._timer: Any = None
        self._warn = RateLimitedLog(log, clock)

    @classmethod
    def in_data_dir(cls, data_dir: Path | str, clock: Clock, **options: Any) -> StatsStore:
        """The store of an engine's ``data_dir`` (``DATA_DIR/acm-stats.sqlite``)."""
        return cls(Path(data_dir) / FILENAME, clock, **options)

    # -- life cycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Create or upgrade the database (blocks briefly: at start); StatsError if unusable."""
        if self._conn is not None or self._closed:
            raise RuntimeError("the ACM statistics store opens once")
        self._conn = open_database(
            self.path, lambda conn: migrate(conn, self.clock.seconds(), MIGRATIONS, _newer),
            error=StatsError, what="the ACM statistics",
            hint="; move the file away to start a new one", synchronous="NORMAL",
            timeout=10.0, busy_timeout=self.busy_timeout,
        )  # fmt: skip
        if self._pending:
            self._arm()

    def close(self) -> None:
        """Write what is pending (waiting for locks if need be) and close the database."""
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        conn, self._conn = self._conn, None
        if conn is None:
            if self._pending:
                log.error("%s: %d ACM events dropped: the store was closed without being "
                          "opened", self.path, len(self._pending))  # fmt: skip
            return
        conn.execute("PRAGMA busy_timeout = 5000")  # stopping: waiting is fine
        while self._pending and self._commit(conn):
            pass
        if self._pending:
            log.error("%s: %d ACM events could not be written at shutdown", self.path,
                      len(self._pending))  # fmt: skip
        conn.close()

    # -- the emitters' side (EventSink) -------------------------------------------------

    def record(self, event: AcmEvent) -> None:
        """Keep ``event``; it is on disk within ``flush_interval``. Never blocks or raises."""
        if self._closed:
            self._drop("closed", "%s: ACM event recorded after the store closed, dropped: %r",
                       event)  # fmt: skip
        elif event.kind not in KINDS or event.channel not in CHANNELS:
            self._drop("invalid", "%s: ACM event of unknown kind or channel dropped: %r", event)
        elif len(self._pending) >= self.max_pending:
            self._drop("full", "%s: %d ACM events wait for the database; dropped: %r",
                       len(self._pending), event)  # fmt: skip
        else:
            self._pending.append(event)
            if self._timer is None and self._conn is not None:
                self._arm()

    @property
    def pending(self) -> int:
        """Events accepted and not yet committed."""
        return len(self._pending)

    def flush(self) -> bool:
        """Commit every pending event now; False if a commit failed (it is retried later)."""
        if self._conn is None:
            raise RuntimeError("the ACM statistics store is not open (call open() first)")
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        while self._pending:
            if not self._commit(self._conn):
                self._arm()
                return False
        return True

    # -- reading ------------------------------------------------------------------------

    def snapshot(self, customer: str, until: float) -> tuple[int, list[AcmEvent]]:
        """(the last id committed, the customer's events before ``until`` not committed yet).

        On the reactor thread; quick (one lookup at the end of the table, a copy
        of the pending list). Another thread reads the rest with
        ``read_events(..., upto=id)`` and adds the list: each event once,
        whatever is committed in between.
        """
        if self._conn is None:
            raise RuntimeError("the ACM statistics store is not open (call open() first)")
        last = self._conn.execute("SELECT MAX(id) FROM events").fetchone()[0]
        pending = [e for e in self._pending if e.customer == customer and e.at < until]
        return int(last or 0), pending

    def events(self, customer: str, since: float, until: float) -> list[AcmEvent]:
        """As :func:`read_events`, with the events not yet committed (blocking: tests, tools)."""
        if self._conn is None:
            raise RuntimeError("the ACM statistics store is not open (call open() first)")
        stored = read_events(self._conn, customer, since, until)
        return stored + [e for e in self._pending if e.customer == customer and e.at < until]

    def report(
        self,
        customer: str,
        acm: AcmSettings,
        since: float,
        until: float,
        groups: Collection[str] | None = None,
    ) -> Report:
        """The customer's figures for ``since <= t < until`` (engine/acm/report.py)."""
        return compute(self.events(customer, since, until), customer, acm, since, until, groups)

    # -- inside -------------------------------------------------------------------------

    def _drop(self, key: str, message: str, *args: Any) -> None:
        self.dropped += 1
        self._warn.warning(key, message, self.path, *args)

    def _arm(self) -> None:
        self._timer = self.clock.callLater(self.flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        conn = self._conn
        if conn is None:  # not reached: close() cancels the timer, open() arms it
            return
        committed = self._commit(conn) if self._pending else True
        purging = self._purge(conn)
        if committed and self._pending:
            self._timer = self.clock.callLater(0, self._on_timer)  # a backlog: batch by batch
        elif self._pending or purging:
            self._arm()

    def _purge(self, conn: sqlite3.Connection) -> bool:
        """Delete one batch of events past the retention when a purge is due; True if more."""
        now = self.clock.seconds()
        if self.keep_days is None or now < self._next_purge:
            return False
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                deleted = conn.execute(_PURGE, (now - self.keep_days * 86400,
                                                self.purge_batch)).rowcount  # fmt: skip
        except sqlite3.Error as exc:
            self._warn.warning("purge", "%s: old ACM events not deleted yet (%s); retrying",
                               self.path, exc)  # fmt: skip
            self._next_purge = now + self.flush_interval
            return False
        self.purged += deleted
        if deleted >= self.purge_batch:
            return True  # more: the next batch at the next tick
        self._next_purge = now + self.purge_every
        return False

    def _commit(self, conn: sqlite3.Connection) -> bool:
        """Append the first ``max_batch`` pending events in one transaction; False if it failed."""
        batch = self._pending[: self.max_batch]
        try:
            with conn:  # commits, or rolls back on an error
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, map(astuple, batch))
        except sqlite3.Error as exc:
            self._warn.warning("commit", "%s: %d ACM events not written yet (%s); retrying",
                               self.path, len(self._pending), exc)  # fmt: skip
            return False
        del self._pending[: len(batch)]
        return True
