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

Reading: :func:`open_readonly` and :func:`read_events` serve ``vms stats``,
which runs beside the engine (WAL readers do not block the writer).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from dataclasses import astuple
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.acm.events import KINDS, AcmEvent
from engine.acm.model import AcmSettings
from engine.acm.report import CHANNELS, Report, compute
from engine.cdr.migrations import Migration, migrate, schema_version
from engine.cdr.store import Clock
from engine.ratelog import RateLimitedLog

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
)  # fmt: skip

_COLUMNS = 'at, customer, kind, channel, "group", contact, operator, detail'
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
# The window's events, and before them each operator's last state event (?1 customer,
# ?2 since, ?3 until), in the order they were recorded.
_WINDOW = f"""
SELECT id, {_COLUMNS} FROM events WHERE customer = ?1 AND at >= ?2 AND at < ?3
UNION ALL
SELECT id, {_COLUMNS} FROM (
    SELECT *, row_number() OVER (PARTITION BY operator ORDER BY at DESC, id DESC) AS latest
    FROM events WHERE customer = ?1 AND kind = 'operator' AND at < ?2
) WHERE latest = 1
ORDER BY at, id"""


class StatsError(Exception):
    """The statistics database cannot be used; the message says why and what to do."""


def _newer(found: int, latest: int) -> Exception:
    return StatsError(f"the ACM statistics database is at schema version {found}, newer "
                      f"than this engine knows ({latest}); run the newer engine, or restore "
                      "a copy")  # fmt: skip


def read_events(
    conn: sqlite3.Connection, customer: str, since: float, until: float
) -> list[AcmEvent]:
    """The customer's events in ``since <= at < until``, with each operator's state at ``since``."""
    return [AcmEvent(*row[1:]) for row in conn.execute(_WINDOW, (customer, since, until))]


def open_readonly(path: Path) -> sqlite3.Connection:
    """``path`` opened read-only for reports; StatsError when it is missing or unusable."""
    if not path.is_file():
        raise StatsError(f"there are no ACM statistics in {path.parent} (no {path.name}); "
                         "the engine writes them once its queues handle contacts")  # fmt: skip
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                               timeout=10.0)  # fmt: skip
        version = schema_version(conn)
    except sqlite3.Error as exc:
        raise StatsError(f"{path} cannot be read as an ACM statistics database ({exc})") from None
    if not 0 < version <= len(MIGRATIONS):
        conn.close()
        if version == 0:
            raise StatsError(f"{path} is not an ACM statistics database (no schema version)")
        raise _newer(version, len(MIGRATIONS))
    return conn


class StatsStore:
    """The ACM events of one engine process, an :class:`~engine.acm.events.EventSink`.

    ``open()`` first, ``close()`` last; all on the reactor thread. Events
    recorded before ``open()`` wait for it; events recorded after ``close()``
    are dropped with a warning. ``busy_timeout``: how long a commit waits for
    another process's write lock before it is retried at the next interval.
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
    ) -> None:
        if flush_interval <= 0 or max_batch < 1 or max_pending < max_batch:
            raise ValueError("need flush_interval > 0 and 1 <= max_batch <= max_pending")
        self.path = Path(path)
        self.clock = clock
        self.flush_interval = flush_interval
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.dropped = 0
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StatsError(f"cannot open the ACM statistics {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, self.clock.seconds(), MIGRATIONS, _newer)
            conn.execute(f"PRAGMA busy_timeout = {max(1, round(self.busy_timeout * 1000))}")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StatsError(f"cannot use the ACM statistics {self.path}: {exc}; move the "
                                 "file away to start a new one") from exc  # fmt: skip
            raise
        self._conn = conn
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

    def events(self, customer: str, since: float, until: float) -> list[AcmEvent]:
        """As :func:`read_events`, with the events not yet committed."""
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
        if self._conn is not None and self._commit(self._conn) and self._pending:
            self._timer = self.clock.callLater(0, self._on_timer)  # a backlog: batch by batch
        elif self._pending:
            self._arm()

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
