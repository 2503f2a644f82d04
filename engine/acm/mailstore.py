"""E-mails received for ACM, durable in ``DATA_DIR/email.sqlite`` from intake to done.

"Loses nothing": the SMTP intake answers 250 only after :meth:`MailStore.add`
has committed (WAL, ``synchronous = FULL``: the commit is on disk), and the
IMAP poller marks a message ``\\Seen`` only after the same. A message sent or
fetched twice (a lost 250, a crash before ``\\Seen``) has the same bytes, so
the same SHA-256, and is kept once per customer. The Message-ID is kept as
information only: it may be missing, and a sender choosing it must not make
another message be dropped. Who handles which e-mail is a row too, so
assignments survive restarts, and every change of hands (and the report of
arrivals, :meth:`MailStore.unannounced`) is one ``BEGIN IMMEDIATE``
transaction: two engines on one ``data_dir`` never give one e-mail to two
operators, nor report one arrival twice.

The intake (aiosmtpd's thread), IMAP threads and the reactor share one
connection, one statement at a time under a lock: e-mail rates are low and
each statement short, so nobody waits for long.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.cdr.migrations import Migration
from engine.cdr.migrations import migrate as apply_migrations
from engine.sqlite import immediate, open_database

__all__ = [
    "FILENAME",
    "Email",
    "GroupQueue",
    "MailStore",
    "MailStoreError",
    "StoreClosedError",
    "digest",
]

FILENAME = "email.sqlite"


class MailStoreError(Exception):
    """The e-mail database cannot be used; the message says why and what to do."""


class StoreClosedError(MailStoreError, RuntimeError):
    """The store is used before ``open()`` or after ``close()`` (a RuntimeError, as before)."""


def digest(raw: bytes) -> str:
    """What makes two stored messages the same one: the SHA-256 of their bytes, in hex."""
    return hashlib.sha256(raw).hexdigest()


def _sql_digest(raw: bytes | None) -> str | None:
    return None if raw is None else digest(bytes(raw))


#: The SQL function migration 2 computes the digest of rows stored before it with.
_DIGEST_FUNCTION = "vms_email_sha256"


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
    # Same message = same bytes (per customer), no more the same Message-ID: NULLs
    # were never equal, and a sender could pick another message's. SQLite cannot drop
    # a UNIQUE constraint, so the table is rebuilt. Copies already kept twice under
    # the old rule stay (their ids may be in the statistics, one may be in hand):
    # all but the first get their id after the digest, so the unique index holds.
    Migration(2, "e-mails are the same when their bytes are (SHA-256), not their Message-ID", (
        """CREATE TABLE emails_v2 (
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
            digest     TEXT NOT NULL
        )""",
        "INSERT INTO emails_v2 (id, customer, message_id, received, source, sender, recipients,"
        " subject, grp, raw, state, operator, assigned, done, announced, digest)"
        " SELECT id, customer, message_id, received, source, sender, recipients, subject, grp,"
        f" raw, state, operator, assigned, done, announced, {_DIGEST_FUNCTION}(raw)"
        " FROM emails ORDER BY id",
        "DROP TABLE emails",
        "ALTER TABLE emails_v2 RENAME TO emails",
        "UPDATE emails SET digest = digest || ':' || id"
        " WHERE id NOT IN (SELECT MIN(id) FROM emails GROUP BY customer, digest)",
        "CREATE UNIQUE INDEX emails_digest ON emails (customer, digest)",
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
        self._conn = open_database(
            self.path, lambda conn: apply_migrations(conn, now, MIGRATIONS, self._newer),
            error=MailStoreError, what="the e-mail database",
            synchronous="FULL",  # a 250 promises the message is on disk
            timeout=self.busy_timeout, check_same_thread=False,
            prepare=lambda conn: conn.create_function(_DIGEST_FUNCTION, 1, _sql_digest,
                                                      deterministic=True),
        )  # fmt: skip

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
                raise StoreClosedError(f"the e-mail database {self.path} is not open")
            yield self._conn

    @staticmethod
    def _transaction(conn: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction: a second engine on this data_dir waits its turn."""
        return immediate(conn)

    # -- intake ---------------------------------------------------------------------------

    def add(
        self, customer: str, *, message_id: str | None, received: float, source: str,
        sender: str, recipients: Iterable[str], subject: str, group: str, raw: bytes,
    ) -> int | None:  # fmt: skip
        """Keep an e-mail (committed when this returns): its id, None if it is already kept.

        Already kept: the customer has a message with exactly these bytes (:func:`digest`).
        """
        key = digest(raw)
        with self._db() as conn:
            cursor = conn.execute(
                "INSERT INTO emails (customer, message_id, received, source, sender, recipients,"
                " subject, grp, raw, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (customer, digest) DO NOTHING",
                (customer, message_id, received, source, sender, json.dumps(list(recipients)),
                 subject, group, raw, key),
            )  # fmt: skip
            return cursor.lastrowid if cursor.rowcount == 1 else None

    def unannounced(self) -> list[Email]:
        """E-mails kept but not yet reported as queued, in arrival order; marked reported now.

        Read and marked in one write transaction: of two engines on one data_dir
        asking at once, one gets them and the other waits, then gets none.
        """
        with self._db() as conn, self._transaction(conn):
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM emails WHERE announced = 0 ORDER BY id"
            ).fetchall()
            conn.execute("UPDATE emails SET announced = 1 WHERE announced = 0")
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

    def read(self, customer: str, email_id: int) -> tuple[Email, bytes] | None:
        """An e-mail and its bytes in one statement (up to ``max_size``: not on the reactor)."""
        with self._db() as conn:
            row = conn.execute(f"SELECT {_COLUMNS}, raw FROM emails WHERE customer = ? AND id = ?",
                               (customer, email_id)).fetchone()  # fmt: skip
        return None if row is None else (_email(row[:-1]), bytes(row[-1]))

    def waiting(self, customer: str, groups: Iterable[str]) -> list[Email]:
        """The e-mails waiting in ``groups``, oldest first."""
        wanted = list(groups)
        marks = ", ".join("?" * len(wanted))
        with self._db() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND state = 'waiting'"
                f" AND grp IN ({marks}) ORDER BY received, id", (customer, *wanted)).fetchall()
        return [_email(row) for row in rows]

    def oldest_waiting(self, customer: str, groups: Iterable[str]) -> list[Email]:
        """The oldest e-mail waiting in each of ``groups`` (that has one), oldest first.

        One indexed ``LIMIT 1`` per group, whatever the queue's length.
        """
        heads = []
        with self._db() as conn:
            for group in sorted(set(groups)):
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND state = 'waiting'"
                    " AND grp = ? ORDER BY received, id LIMIT 1",
                    (customer, group),
                ).fetchone()
                if row is not None:
                    heads.append(_email(row))
        return sorted(heads, key=lambda e: (e.received, e.id))

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

    def finish(
        self, customer: str, email_id: int, at: float, operator: str | None = None
    ) -> Email | None:
        """The assigned e-mail (``operator``'s, if given) is handled; None when it was not."""
        return self._move(customer, email_id, "assigned", "state = 'done', done = ?", (at,),
                          operator)  # fmt: skip

    def give_back(self, customer: str, email_id: int, operator: str | None = None) -> Email | None:
        """The assigned e-mail (``operator``'s, if given) waits again, in its place by arrival.

        None when it was not assigned (to them).
        """
        return self._move(customer, email_id, "assigned",
                          "state = 'waiting', operator = NULL, assigned = NULL", (),
                          operator)  # fmt: skip

    def _move(
        self, customer: str, email_id: int, old: str, change: str, values: tuple[object, ...],
        operator: str | None = None,
    ) -> Email | None:  # fmt: skip
        whose = "" if operator is None else " AND operator = ?"
        mine = () if operator is None else (operator,)
        with self._db() as conn, self._transaction(conn):
            before = conn.execute(
                f"SELECT {_COLUMNS} FROM emails WHERE customer = ? AND id = ? AND state = ?"
                f"{whose}", (customer, email_id, old, *mine)).fetchone()  # fmt: skip
            if before is not None:
                conn.execute(f"UPDATE emails SET {change} WHERE id = ?", (*values, email_id))
                before = conn.execute(f"SELECT {_COLUMNS} FROM emails WHERE id = ?",
                                      (email_id,)).fetchone()  # fmt: skip
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
