"""Crash recovery: the open legs of a dead engine are closed as failed; live ones are left alone."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cdrkit import T0, clock_at, leg, open_store, owners, rows, start
from engine.cdr.store import CRASH_REASON

ROOT = Path(__file__).resolve().parents[1]

# An engine process: commits some legs, queues one more, then waits to be killed.
WRITER = textwrap.dedent("""\
    import sys, time
    from twisted.internet import task
    from engine.cdr.record import LegRecord
    from engine.cdr.store import CdrStore

    clock = task.Clock()
    clock.advance(time.time())
    store = CdrStore(sys.argv[1], clock, checkpoint_interval=None)
    store.open()
    def leg(call, n, **kw):
        return LegRecord(call, n, "acme", "+3226001122", "+3225551234", clock.seconds(), **kw)
    for i in range(3):
        store.leg_started(leg(f"up-{i}", 0))
    outgoing = leg("up-0", 1, destination="+3225559999", billed_to="acme")
    store.leg_started(outgoing)
    clock.advance(1.0)                    # group commit
    outgoing.answer = clock.seconds()
    store.leg_updated(outgoing)
    store.leg_ended(leg("done", 0).finish(clock.seconds() + 0.5, "busy", 486))
    clock.advance(1.5)                    # group commit and heartbeat
    store.leg_started(leg("queued", 0))   # within the commit interval: not on disk yet
    print(store.owner, flush=True)
    time.sleep(120)
""")


def test_legs_of_a_killed_process_are_closed_as_failed_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert writer.stdout is not None
        dead_owner = writer.stdout.readline().strip()
        assert dead_owner, "the writer process did not start"
        # While it lives, a process starting on the same data_dir leaves its legs alone.
        other, closed = start(path, clock_at(time.time()))
        other.close()
        assert closed == 0 and len(rows(path, "open_legs")) == 4
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    last_beat = owners(path)[dead_owner]["heartbeat"]

    store, closed = start(path, clock_at(time.time()))
    store.close()
    assert closed == 4
    assert rows(path, "open_legs") == {}
    assert dead_owner not in owners(path)
    ended = rows(path)
    assert set(ended) == {("up-0", 0), ("up-1", 0), ("up-2", 0), ("up-0", 1), ("done", 0)}
    for key in [("up-0", 0), ("up-1", 0), ("up-2", 0), ("up-0", 1)]:
        row = ended[key]
        assert (row["outcome"], row["reason"], row["end"]) == ("failed", CRASH_REASON, last_beat)
        assert row["owner"] == dead_owner
    answered = ended[("up-0", 1)]
    assert answered["answer"] is not None  # its answer was committed before the kill
    assert answered["duration"] == last_beat - answered["answer"] > 0
    assert answered["billed_to"] == "acme" and answered["destination"] == "+3225559999"
    assert ended[("done", 0)]["outcome"] == "busy"  # what had ended stays as it was
    # The trade-off of the group commit: the leg queued after the last commit is lost.
    assert ("queued", 0) not in ended


def test_two_live_owners_do_not_close_each_others_legs(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock_a, clock_b = clock_at(), clock_at()
    a, closed_a = start(path, clock_a, owner="host-a:100:1.0", heartbeat_interval=2, grace=10)
    a_leg = leg("a1", 1)
    a_leg.answer = T0 + 1
    a.leg_started(a_leg)
    b, closed_b = start(path, clock_b, owner="host-b:200:1.0", heartbeat_interval=2, grace=10)
    b.leg_started(leg("b1"))
    assert closed_a == closed_b == 0
    for _ in range(30):  # a minute of both running: each heartbeat also looks for the dead
        clock_a.advance(2)
        clock_b.advance(2)
    assert set(rows(path, "open_legs")) == {("a1", 1), ("b1", 0)}
    assert rows(path) == {}

    # a stalls (its reactor blocked, or it died on another host): b closes its legs
    # once a's heartbeat is older than the grace period, at a's last heartbeat.
    a_last = owners(path)["host-a:100:1.0"]["heartbeat"]
    for _ in range(5):
        clock_b.advance(2)
    assert len(rows(path, "open_legs")) == 2  # silent for exactly the grace period: alive
    clock_b.advance(2)
    assert set(rows(path, "open_legs")) == {("b1", 0)}
    recovered = rows(path)[("a1", 1)]
    assert (recovered["outcome"], recovered["end"], recovered["reason"]) == (
        "failed", a_last, CRASH_REASON)  # fmt: skip
    assert recovered["duration"] == a_last - (T0 + 1)
    assert "host-a:100:1.0" not in owners(path)

    # a was only stalled: it comes back, signs in again, and its real end wins.
    clock_a.advance(2)
    assert "host-a:100:1.0" in owners(path)
    a.leg_ended(a_leg.finish(clock_a.seconds(), "answered", 200))
    clock_a.advance(0.05)
    assert rows(path)[("a1", 1)]["outcome"] == "answered"
    a.close()
    b.close()


def test_at_start_owners_silent_longer_than_the_grace_are_dead(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    open_store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    for owner, heartbeat in (("far:1:0", T0 - 60), ("near:1:0", T0 - 5)):
        conn.execute("INSERT INTO owners VALUES (?, ?, 'pid:[1]', 1, 0, ?)",
                     (owner, owner.split(":")[0], heartbeat))  # fmt: skip
        conn.execute("INSERT INTO open_legs (call_id, leg, called, start, owner) "
                     "VALUES (?, 0, '+3225551234', ?, ?)", (owner, T0 - 100, owner))  # fmt: skip
    store, closed = start(path, clock_at(T0), grace=15)
    assert closed == 1
    assert list(rows(path)) == [("far:1:0", 0)] and rows(path)[("far:1:0", 0)]["end"] == T0 - 60
    assert list(rows(path, "open_legs")) == [("near:1:0", 0)]
    store.close()


def test_at_start_open_legs_of_unknown_owners_are_closed_at_their_last_known_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cdr.sqlite"
    open_store(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO open_legs (call_id, leg, called, start, ringing, answer, owner) "
                 "VALUES ('lost', 1, '+3225551234', ?, ?, ?, 'gone:1:0')",
                 (T0, T0 + 1, T0 + 3))  # fmt: skip
    store, closed = start(path, clock_at(T0 + 3600))
    store.close()
    assert closed == 1
    row = rows(path)[("lost", 1)]
    assert (row["outcome"], row["end"], row["duration"]) == ("failed", T0 + 3, 0)


def test_a_process_that_closes_with_legs_open_leaves_them_to_recovery(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite"
    clock = clock_at()
    first = open_store(path, clock, owner="here:1:0")
    first.leg_started(leg("c1"))
    clock.advance(5)
    first.close()  # without close_open: the owner stays, with its last heartbeat
    assert owners(path)["here:1:0"]["heartbeat"] == T0 + 5
    assert list(rows(path, "open_legs")) == [("c1", 0)]
    second, closed = start(path, clock_at(T0 + 60))
    second.close()
    assert closed == 1 and rows(path)[("c1", 0)]["end"] == T0 + 5
