"""E-mails received for ACM, durable in ``DATA_DIR/email.sqlite`` from intake to done.

"Loses nothing": the SMTP intake answers 250 only after :meth:`MailStore.add`
has committed (WAL, ``synchronous = FULL``: the commit is on disk), and the
IMAP poller marks a message ``\\Seen`` only after the same. A message sent or
fetched twice (a lost 250, a crash before ``\\Seen``) has the same
Message-ID and is kept once. Who handles which e-mail is a row too, so
assignments survive restarts, and every change of hands is one conditional
``UPDATE``: two engines on one ``data_dir`` never give one e-mail to two
operators.

The intake (aiosmtpd's thread), IMAP threads and the reactor share one
connection, one statement at a time under a lock: e-mail rates are low and
each statement short, so nobody waits for long.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.cdr.migrations import Migration
from engine.cdr.migrations import migrate as apply_migrations

__all__ = ["FILENAME", "Email", "GroupQueue", "MailStore", "MailStoreError"]

FILENAME = "email.sqlite"


class MailStoreError(Exception):
    """The e-mail database cannot be used; the message says why and what to do."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "e-mails and who handles them", (
        """CREATE TABLE emails (
            id         INTEGER PRIMARY KEY,
            customer   TEXT NOT NULL,
            message_id TEXT,
            received   REAL NOT NULL,
            source     TEXT NOT NULL CHECK (source IN ('smtp', 'imap')),
            sender     TEXT NOT NULL,
            recipients TEXT NOT NULL,
            subject    TEXT NOT NULL,
            grp        TEXT NOT NULL,
            raw        BLOB NOT NULL,
            state      TEXT NOT NULL DEFAULT 'waiting'
                       CHECK (state IN ('waiting', 'assigned', 'done')),
            operator   TEXT,
            assigned   REAL,
            done       REAL,
            announced  INTEGER NOT NULL DEFAULT 0,
            UNIQUE (customer, message_id)
        )""",
        "CREATE INDEX emails_waiting ON emails (customer, grp, received) "
        "WHERE state = 'waiting'",
        "CREATE INDEX emails_assigned ON emails (customer, operator) WHERE state = 'assigned'",
        "CREATE INDEX emails_unannounced ON emails (id) WHERE announced = 0",
    )),
)  # fmt: skip


@dataclass(frozen=True)
class Email:
    """One e-mail as the desk sees it (its raw text is read apart: :meth:`MailStore.raw`)."""

    id: int
    customer: str
    message_id: str | None
    received: float
    source: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    group: str
    state: str
    operator: str | None
    assigned: float | None
    done: float | None

    @property
    def contact(self) -> str:
        """Its name in ACM events and operator holds (one namespace with call ids)."""
        return f"email-{self.id}"


@dataclass(frozen=True)
class GroupQueue:
    """A group's e-mails now: how many wait, since when the oldest, how many are in hand."""

    waiting: int
    oldest: float | None
    assigned: int


_COLUMNS = ("id, customer, message_id, received, source, sender, recipients, subject, grp, "
            "state, operator, assigned, done")  # fmt: skip


def _email(row: tuple[object, ...]) -> Email:
    values = list(row)
    values[6] = tuple(json.loads(str(values[6])))
    return Email(*values)  # type: ignore[arg-type]


class MailStore:
    """The e-mails of ``path``; ``open()`` first, ``close()`` last (or ``with store:``)."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> MailStore:
        return cls(Path(data_dir) / FILENAME)

    def open(self, now: float) -> None:
        """Create or upgrade the database; MailStoreError when it cannot be used."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout,
                                   check_same_thread=False)  # fmt: skip
        except (OSError, sqlite3.Error) as exc:
            raise MailStoreError(f"cannot open the e-mail database {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # a 250 promises the message is on disk
            apply_migrations(conn, now, MIGRATIONS, self._newer)
        except sqlite3.Error as exc:
            conn.close()
            raise MailStoreError(f"cannot use the e-mail database {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _newer(self, found: int, latest: int) -> Exception:
        return MailStoreError(f"the e-mail database {self.path} is at schema version {found}, "
                              f"newer than this engine knows ({latest})")  # fmt: skip

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("the e-mail store is not open; call open() first")
            yield self._conn

    # -- intake ---------------------------------------------------------------------------

    def add(
        self, customer: str, *, message_id: str | None, received: float, source: str,
        sender: str, recipients: Iterable[str], subject: str, group: str, raw: bytes,
    ) -> int | None:  # fmt: skip
        """Keep an e-mail (committed when this returns): its id, None if it is already kept."""
        with self._db() as conn:
            cursor = conn.execute(
                "INSERT INTO emails (customer, message_id, received, source, sender, recipients,"
                " subject, grp, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (customer, message_id) DO NOTHING",
                (customer, message_id, received, source, sender, json.dumps(list(recipients)),
                 subject, group, raw),
            )  # fmt: skip
            return cursor.lastrowid if cursor.rowcount == 1 else None

    def unannounced(self) -> list[Email]:
        """E-mails kept but not yet reported as queued, in arrival order; marked reported now.

        The reactor is the only caller, so each is reported once per data_dir.
        """
        with self._db() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM emails WHERE announced = 0 ORDER BY id").fetchall()
            conn.executemany("UPDATE emails SET announced = 1 WHERE id = ?",
                             [(row[0],) for row in rows])  # fmt: skip
        return [_email(row) for row in rows]

    # -- the desk -------------------------------------------------------------------------

    def get(self, customer: str, email_id: int) -> Email | None:
        with self._db() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND id = ?",
                               (customer, email_id)).fetchone()  # fmt: skip
        return None if row is None else _email(row)

    def raw(self, customer: str, email_id: int) -> bytes | None:
        with self._db() as conn:
            row = conn.execute("SELECT raw FROM emails WHERE customer = ? AND id = ?",
                               (customer, email_id)).fetchone()  # fmt: skip
        return None if row is None else bytes(row[0])

    def waiting(self, customer: str, groups: Iterable[str]) -> list[Email]:
        """The e-mails waiting in ``groups``, oldest first."""
        wanted = list(groups)
        marks = ", ".join("?" * len(wanted))
        with self._db() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND state = 'waiting'"
                f" AND grp IN ({marks}) ORDER BY received, id", (customer, *wanted)).fetchall()
        return [_email(row) for row in rows]

    def assigned_to(self, customer: str, operator: str) -> Email | None:
        """The e-mail the operator has in hand (the oldest, should there be several)."""
        with self._db() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND state = 'assigned'"
                " AND operator = ? ORDER BY assigned, id LIMIT 1", (customer, operator)).fetchone()
        return None if row is None else _email(row)

    def assign(self, customer: str, email_id: int, operator: str, at: float) -> Email | None:
        """Give a waiting e-mail to ``operator``; None when it was not waiting any more."""
        return self._move(customer, email_id, "waiting", "state = 'assigned', operator = ?,"
                          " assigned = ?", (operator, at))  # fmt: skip

    def finish(self, customer: str, email_id: int, at: float) -> Email | None:
        """The assigned e-mail is handled; None when it was not assigned."""
        return self._move(customer, email_id, "assigned", "state = 'done', done = ?", (at,))

    def give_back(self, customer: str, email_id: int) -> Email | None:
        """The assigned e-mail waits again, in its place by arrival; None if not assigned."""
        return self._move(customer, email_id, "assigned",
                          "state = 'waiting', operator = NULL, assigned = NULL", ())  # fmt: skip

    def _move(
        self, customer: str, email_id: int, old: str, change: str, values: tuple[object, ...]
    ) -> Email | None:
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                before = conn.execute(
                    f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND id = ? AND state = ?",
                    (customer, email_id, old)).fetchone()  # fmt: skip
                if before is not None:
                    conn.execute(f"UPDATE emails SET {change} WHERE id = ?", (*values, email_id))
                    before = conn.execute(f"SELECT {_COLUMNS} FROM emails WHERE id = ?",
                                          (email_id,)).fetchone()  # fmt: skip
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return None if before is None else _email(before)

    def queues(self, customer: str) -> dict[str, GroupQueue]:
        """Each group with e-mails waiting or in hand."""
        with self._db() as conn:
            waiting = conn.execute(
                "SELECT grp, COUNT(*), MIN(received) FROM emails"
                " WHERE customer = ? AND state = 'waiting' GROUP BY grp", (customer,)).fetchall()
            assigned = dict(conn.execute(
                "SELECT grp, COUNT(*) FROM emails"
                " WHERE customer = ? AND state = 'assigned' GROUP BY grp", (customer,)).fetchall())
        out = {grp: GroupQueue(count, oldest, assigned.pop(grp, 0))
               for grp, count, oldest in waiting}  # fmt: skip
        out.update((grp, GroupQueue(0, None, count)) for grp, count in assigned.items())
        return dict(sorted(out.items()))
