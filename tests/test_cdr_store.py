"""The call-record store: group commit on the clock, rows as legs start, change and end."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from cdrkit import T0, clock_at, leg, open_store, owners, record_of, rows
from engine.cdr.store import SHUTDOWN_REASON, CdrStore


def test_nothing_is_committed_before_the_interval_and_everything_after(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock)
    for i in range(50):
        store.leg_started(leg(f"c{i}"))
    store.leg_ended(leg("done").finish(T0, "rejected", 404))
    assert store.pending == 51
    clock.advance(0.049)
    assert rows(path, "open_legs") == {} and rows(path) == {}  # a second connection sees nothing
    clock.advance(0.001)
    assert len(rows(path, "open_legs")) == 50 and list(rows(path)) == [("done", 0)]
    assert (store.pending, store.commits, store.rows_written) == (0, 1, 51)
    store.close()


def test_the_interval_counts_from_the_first_queued_leg(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock, commit_interval=0.1)
    store.leg_started(leg("a"))
    clock.advance(0.06)
    store.leg_started(leg("b"))
    clock.advance(0.04)  # one commit for both, 0.1 s after the first
    assert set(rows(path, "open_legs")) == {("a", 0), ("b", 0)}
    assert store.commits == 1
    clock.advance(1.0)
    assert store.commits == 1  # idle: no commits, no timer
    store.close()


def test_a_backlog_is_written_max_batch_legs_a_commit(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock, max_batch=10)
    for i in range(25):
        store.leg_started(leg(f"c{i:02d}"))
    inserted: list[int] = []
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
    # task.Clock runs the follow-up commits (delay 0) within this advance; the
    # reactor runs them in its next iterations, after the I/O that waits.
    clock.advance(0.05)
    for statement in statements:
        if statement == "BEGIN IMMEDIATE":
            inserted.append(0)
        elif statement.startswith("INSERT INTO open_legs"):
            inserted[-1] += 1
    assert inserted == [10, 10, 5]  # three transactions
    assert (store.commits, store.pending, len(rows(path, "open_legs"))) == (3, 0, 25)
    store.close()


def test_flush_commits_now(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    store = open_store(path)
    store.leg_started(leg("a"))
    assert store.flush() is True
    assert list(rows(path, "open_legs")) == [("a", 0)]
    store.close()


def test_a_leg_is_started_updated_and_ended(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock)
    outgoing = leg("c1", 1, sip_call_id="b1@vms", peer="192.0.2.20:5060",
                   action_path="on_no_answer")  # fmt: skip
    store.leg_started(outgoing)
    clock.advance(1)
    assert record_of(rows(path, "open_legs")[("c1", 1)]) == outgoing
    outgoing.ringing = T0 + 0.5
    outgoing.answer = T0 + 2
    store.leg_updated(outgoing)
    clock.advance(1)
    row = rows(path, "open_legs")[("c1", 1)]
    assert (row["ringing"], row["answer"], row["end"]) == (T0 + 0.5, T0 + 2, None)
    outgoing.finish(T0 + 62, "answered", 200)
    store.leg_ended(outgoing)
    clock.advance(1)
    assert rows(path, "open_legs") == {}
    ended = rows(path)[("c1", 1)]
    assert record_of(ended) == outgoing
    assert ended["duration"] == 60 and ended["owner"] == store.owner
    store.close()


def test_events_of_one_leg_in_one_interval_make_one_write(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock)
    quick = leg("c1", 1)
    store.leg_started(quick)
    quick.finish(T0 + 0.01, "unreachable", 503)
    store.leg_ended(quick)
    assert store.pending == 1
    clock.advance(0.05)
    assert rows(path, "open_legs") == {}
    assert rows(path)[("c1", 1)]["outcome"] == "unreachable"
    store.close()


def test_the_queue_keeps_a_copy_not_the_record(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock)
    record = leg("c1")
    store.leg_started(record)
    record.route = "changed after the event"
    clock.advance(0.05)
    assert rows(path, "open_legs")[("c1", 0)]["route"] == "office hours"
    store.close()


def test_inconsistent_records_are_refused_at_the_call(tmp_path: Path) -> None:
    store = open_store(tmp_path / "cdr.sqlite")
    record = leg("c1")
    with pytest.raises(ValueError, match="leg_ended needs a closed record"):
        store.leg_ended(record)
    record.outcome = "vanished"
    with pytest.raises(ValueError, match="outcome 'vanished' is not one of"):
        store.leg_updated(record)
    assert store.pending == 0
    store.close()


def test_the_schema_refuses_bad_outcomes_too(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    open_store(path).close()
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("INSERT INTO legs (call_id, leg, called, outcome, start, \"end\", owner) "
                     "VALUES ('x', 0, '+3225551234', 'lost', 1, 2, 'o')")  # fmt: skip


def test_only_the_group_commit_writes_on_the_reactor_path(tmp_path: Path) -> None:
    clock = clock_at()
    store = open_store(tmp_path / "cdr.sqlite", clock)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
    calls = [leg(f"c{i}", n) for i in range(20) for n in (0, 1)]
    for record in calls:
        store.leg_started(record)
    for record in calls[1::2]:
        record.answer = T0 + 1
        store.leg_updated(record)
    for record in calls:
        store.leg_ended(record.finish(T0 + 9, "answered" if record.answer else "cancelled"))
    assert statements == []  # leg_* touch no SQLite at all
    clock.advance(0.05)
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert all(s.startswith(("INSERT INTO legs", "DELETE FROM open_legs"))
               for s in statements[1:-1])  # fmt: skip
    store.close()


def test_close_open_closes_this_processes_open_legs(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock)
    answered = leg("c1", 1)
    answered.answer = T0 + 2
    store.leg_started(answered)
    store.leg_started(leg("c1"))
    clock.advance(10)
    assert store.close_open() == 2  # commits what is queued first
    store.close()
    ended = rows(path)
    assert rows(path, "open_legs") == {}
    assert {k: (r["outcome"], r["end"], r["duration"], r["reason"]) for k, r in ended.items()} == {
        ("c1", 0): ("failed", T0 + 10, 0, SHUTDOWN_REASON),
        ("c1", 1): ("failed", T0 + 10, 8, SHUTDOWN_REASON),
    }
    assert owners(path) == {}  # signed off: nothing left open


def test_a_locked_database_delays_the_commit_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock, busy_timeout=0.001)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, for long
    store.leg_started(leg("c1"))
    with caplog.at_level(logging.WARNING, logger="vms.cdr"):
        began = time.monotonic()
        clock.advance(0.05)
        assert time.monotonic() - began < 0.5  # the reactor did not wait for the lock
    assert store.pending == 1 and store.failed_commits == 1
    assert "1 call records not written yet" in caplog.text
    other.execute("ROLLBACK")
    clock.advance(0.05)  # retried at the next interval
    assert store.pending == 0 and list(rows(path, "open_legs")) == [("c1", 0)]
    store.close()


def test_the_heartbeat_is_written_from_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock, heartbeat_interval=2.0)
    me = owners(path)[store.owner]
    assert (me["pid"], me["host"], me["heartbeat"]) == (store.pid, store.host, T0)
    assert store.owner == f"{store.host}:{store.pid}:{store.started:.6f}"
    clock.advance(2.0)
    clock.advance(2.0)
    assert owners(path)[store.owner]["heartbeat"] == T0 + 4
    store.close()
    assert owners(path) == {}  # signed off


def test_the_checkpointer_thread_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    store = open_store(path, clock, checkpoint_interval=0.05)
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] > 1000  # type: ignore[union-attr]
    for i in range(2000):
        store.leg_ended(leg(f"c{i}").finish(T0 + 1, "rejected", 404))
    clock.advance(0.05)
    deadline = time.monotonic() + 10
    while path.stat().st_size < 200_000 and time.monotonic() < deadline:
        time.sleep(0.02)  # only a checkpoint writes pages into the database file
    assert path.stat().st_size >= 200_000
    store.close()
    assert store._checkpointer is None


def test_the_store_must_be_open(tmp_path: Path) -> None:
    store = CdrStore(tmp_path / "cdr.sqlite", clock_at())
    with pytest.raises(RuntimeError, match="not open"):
        store.leg_started(leg("c1"))
    store.close()  # closing a store never opened is harmless


def test_the_store_lives_in_the_data_dir(tmp_path: Path) -> None:
    store = CdrStore.in_data_dir(tmp_path / "var", clock_at(), checkpoint_interval=None)
    store.open()
    store.close()
    assert (tmp_path / "var" / "cdr.sqlite").is_file()


def test_intervals_are_checked() -> None:
    with pytest.raises(ValueError, match="commit_interval <= heartbeat_interval < grace"):
        CdrStore("x", clock_at(), heartbeat_interval=20, grace=10)
