"""The mode store: durable, shared by processes on one file, changes exactly once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from twisted.internet import task

from engine.modes.migrations import MIGRATIONS, ModeStoreError, schema_version
from engine.modes.store import FILENAME, AuditEntry, ModeChange, ModeState, ModeStore

T0 = 1_796_112_000.0  # 2026-12-01T08:00:00Z
DAY = 86400.0
CALLER = "+3226001122"


def clock_at(t: float = T0) -> task.Clock:
    clock = task.Clock()
    clock.advance(t)
    return clock


def opened(path: Path, clock: task.Clock, **options: float) -> ModeStore:
    store = ModeStore(path, clock.seconds, **options)
    store.open()
    return store


@pytest.fixture
def clock() -> task.Clock:
    return clock_at()


@pytest.fixture
def store(tmp_path: Path, clock: task.Clock) -> ModeStore:
    return opened(tmp_path / FILENAME, clock)


# -- modes --------------------------------------------------------------------------------


def test_a_customer_never_switched_is_normal(store: ModeStore) -> None:
    assert store.get("acme") == ModeState("acme", "normal", None, None, "")
    assert store.all() == {}
    assert store.version() == 0


def test_set_mode_returns_the_change_and_moves_the_version(store: ModeStore) -> None:
    change = store.set_mode("acme", "drs", T0 + 31 * DAY, "phone +3226001122", "phone")
    new = ModeState("acme", "drs", T0, T0 + 31 * DAY, "phone +3226001122")
    assert change == ModeChange("acme", ModeState("acme", "normal", None, None, ""), new, "phone")
    assert store.get("acme") == new
    assert store.all() == {"acme": new}
    assert store.version() == 1


def test_the_same_mode_again_changes_nothing(store: ModeStore) -> None:
    store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    assert store.set_mode("acme", "drs", T0 + DAY, "api", "api") is None
    assert store.set_mode("globex", "normal", None, "cli", "cli") is None
    assert store.version() == 1
    assert len(store.audit_log()) == 1


def test_a_new_end_keeps_since(store: ModeStore, clock: task.Clock) -> None:
    store.set_mode("acme", "continuity", None, "cli", "cli")
    clock.advance(60)
    change = store.set_mode("acme", "continuity", T0 + DAY, "api", "api")
    assert change is not None
    assert change.new == ModeState("acme", "continuity", T0, T0 + DAY, "api")


def test_back_to_normal_records_when_and_by_whom(store: ModeStore, clock: task.Clock) -> None:
    store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    clock.advance(10)
    change = store.set_mode("acme", "normal", None, "phone +3226001122", "phone")
    assert change is not None and change.old.mode == "drs"
    assert store.get("acme") == ModeState("acme", "normal", T0 + 10, None, "phone +3226001122")
    assert store.all() == {}


@pytest.mark.parametrize(("mode", "until", "message"), [
    ("holiday", None, "unknown mode 'holiday'"),
    ("normal", T0 + DAY, "normal mode has no end"),
    ("drs", T0, "is not in the future"),
])  # fmt: skip
def test_set_mode_refuses_what_makes_no_sense(
    store: ModeStore, mode: str, until: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.set_mode("acme", mode, until, "cli", "cli")
    assert store.get("acme").mode == "normal"
    assert store.version() == 0  # the transaction was rolled back


def test_modes_survive_a_restart_and_are_seen_by_another_process(
    tmp_path: Path, store: ModeStore, clock: task.Clock
) -> None:
    other = opened(tmp_path / FILENAME, clock)
    store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    assert other.get("acme").mode == "drs"  # no cache: the next read sees it
    assert other.version() == 1
    store.close()
    other.close()
    again = opened(tmp_path / FILENAME, clock)
    assert again.get("acme") == ModeState("acme", "drs", T0, T0 + DAY, "cli")


def test_in_data_dir_creates_the_directory(tmp_path: Path, clock: task.Clock) -> None:
    with ModeStore.in_data_dir(tmp_path / "var" / "new", clock.seconds) as store:
        store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    assert (tmp_path / "var" / "new" / FILENAME).is_file()


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        ModeStore(tmp_path / FILENAME).get("acme")


# -- expiry -------------------------------------------------------------------------------


def test_expire_due_reverts_what_is_due_and_nothing_else(
    store: ModeStore, clock: task.Clock
) -> None:
    store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    store.set_mode("globex", "continuity", T0 + 2 * DAY, "api", "api")
    store.set_mode("initech", "continuity", None, "api", "api")
    clock.advance(DAY - 1)
    assert store.expire_due() == []
    clock.advance(1)
    [change] = store.expire_due()
    old = ModeState("acme", "drs", T0, T0 + DAY, "cli")
    new = ModeState("acme", "normal", T0 + DAY, None, "expiry")
    assert change == ModeChange("acme", old, new, "expiry")
    assert set(store.all()) == {"globex", "initech"}
    assert store.expire_due() == []
    last = store.audit_log(limit=1)[0]
    assert (last.customer, last.action, last.via) == ("acme", "drs-expire", "expiry")


def test_an_expiry_is_done_by_one_store_only(
    tmp_path: Path, store: ModeStore, clock: task.Clock
) -> None:
    other = opened(tmp_path / FILENAME, clock)
    store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    clock.advance(DAY)
    assert [c.customer for c in other.expire_due()] == ["acme"]
    assert store.expire_due() == []


def _expire(path: str, now: float, start: object, out: object) -> None:
    store = ModeStore(Path(path), lambda: now)
    store.open()
    start.wait()  # type: ignore[attr-defined]
    out.put([c.customer for c in store.expire_due()])  # type: ignore[attr-defined]
    store.close()


def test_processes_expiring_at_once_each_get_distinct_customers(
    tmp_path: Path, store: ModeStore
) -> None:
    customers = [f"c{i:03d}" for i in range(200)]
    for cid in customers:
        store.set_mode(cid, "drs", T0 + 1, "cli", "cli")
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_expire, args=(str(store.path), T0 + 2, start, out))
               for _ in range(4)]  # fmt: skip
    for w in workers:
        w.start()
    start.set()
    got = [out.get(timeout=30) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    expired = [cid for batch in got for cid in batch]
    assert sorted(expired) == customers  # every one once: none twice, none lost
    assert store.all() == {}
    assert len(store.take_changes()) == 2 * len(customers)  # each activation, each expiry


# -- changes to report --------------------------------------------------------------------


def test_changes_are_taken_once_in_order(tmp_path: Path, store: ModeStore) -> None:
    other = opened(tmp_path / FILENAME, clock_at())
    a = store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    b = other.set_mode("globex", "continuity", None, "api", "api")
    c = store.set_mode("acme", "normal", None, "phone +3226001122", "phone")
    assert other.take_changes() == [a, b, c]
    assert store.take_changes() == []
    assert other.take_changes() == []


# -- audit --------------------------------------------------------------------------------


def test_audit_log_filters_and_keeps_the_newest_last(store: ModeStore, clock: task.Clock) -> None:
    store.audit("acme", CALLER, "drs-login", "wrong password", "phone")
    clock.advance(10)
    store.audit(None, CALLER, "drs-login", "abandoned", "phone", "no customer number keyed")
    clock.advance(10)
    store.set_mode("acme", "drs", T0 + DAY, "phone +3226001122", "phone")
    log = store.audit_log()
    assert [e.at for e in log] == [T0, T0 + 10, T0 + 20]
    assert log[0] == AuditEntry(T0, "acme", CALLER, "drs-login", "wrong password", "phone", "")
    assert log[2] == AuditEntry(T0 + 20, "acme", None, "drs-activate", "ok", "phone",
                                "by phone +3226001122; until 2026-12-02T08:00:00Z")  # fmt: skip
    assert [e.at for e in store.audit_log(customer="acme")] == [T0, T0 + 20]
    assert [e.at for e in store.audit_log(since=T0 + 10)] == [T0 + 10, T0 + 20]
    assert [e.at for e in store.audit_log(limit=2)] == [T0 + 10, T0 + 20]
    assert store.audit_log(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.audit_log(limit=-1)


@pytest.mark.parametrize(("steps", "action", "detail"), [
    ([("continuity", None)], "continuity-activate", "by cli; no end"),
    ([("drs", 1.0), ("drs", 2.0)], "drs-activate",
     "by cli; until 2026-12-03T08:00:00Z; a new end"),
    ([("drs", 1.0), ("continuity", None)], "continuity-activate", "by cli; no end; replaces drs"),
    ([("continuity", None), ("normal", None)], "continuity-deactivate", "by cli"),
])  # fmt: skip
def test_each_change_is_audited_with_what_it_did(
    store: ModeStore, steps: list[tuple[str, float | None]], action: str, detail: str
) -> None:
    for mode, days in steps:
        store.set_mode("acme", mode, None if days is None else T0 + days * DAY, "cli", "cli")
    last = store.audit_log(limit=1)[0]
    assert (last.action, last.outcome, last.via, last.detail) == (action, "ok", "cli", detail)


# -- lockout ------------------------------------------------------------------------------


def test_three_wrong_passwords_for_a_customer_lock_it_for_15_minutes(
    store: ModeStore, clock: task.Clock
) -> None:
    for caller in ("+3226000001", "+3226000002"):
        store.failed_attempt("acme", caller)
        clock.advance(60)
    assert store.locked_until("acme", "+3226000009") is None
    store.failed_attempt("acme", "+3226000003")
    third = clock.seconds()
    assert store.locked_until("acme", "+3226000009") == third + 900
    assert store.locked_until("globex", "+3226000009") is None  # another customer, caller
    clock.advance(899)
    assert store.locked_until("acme", None) == third + 900  # whatever comes next
    clock.advance(1)
    assert store.locked_until("acme", None) is None


def test_three_wrong_passwords_from_one_caller_lock_it_for_any_customer(
    store: ModeStore, clock: task.Clock
) -> None:
    for customer in ("acme", "globex", None):  # None: a customer number nobody has
        store.failed_attempt(customer, CALLER)
        clock.advance(1)
    assert store.locked_until("initech", CALLER) == T0 + 2 + 900
    assert store.locked_until("initech", "+3226000009") is None
    assert store.locked_until("acme", None) is None


def test_failures_spread_over_more_than_the_window_do_not_lock(
    store: ModeStore, clock: task.Clock
) -> None:
    for _ in range(5):
        store.failed_attempt("acme", None)
        clock.advance(8 * 60)  # 3 failures span 16 minutes
    assert store.locked_until("acme", None) is None


def test_a_lock_lasts_from_its_last_failure_even_once_older_ones_leave_the_window(
    store: ModeStore, clock: task.Clock
) -> None:
    store.failed_attempt("acme", None)
    clock.advance(14 * 60)
    store.failed_attempt("acme", None)
    store.failed_attempt("acme", None)
    clock.advance(10 * 60)  # the first failure is 24 minutes old now
    assert store.locked_until("acme", None) == T0 + 14 * 60 + 900


def test_attempts_and_minutes_are_parameters(store: ModeStore, clock: task.Clock) -> None:
    store.failed_attempt("acme", None)
    assert store.locked_until("acme", None, attempts=1, minutes=2) == T0 + 120
    assert store.locked_until("acme", None, attempts=2) is None
    with pytest.raises(ValueError, match="attempts"):
        store.locked_until("acme", None, attempts=0)


def test_a_right_password_clears_the_customers_failures(store: ModeStore) -> None:
    store.failed_attempt("acme", "+3226000001")
    store.failed_attempt("acme", "+3226000002")
    store.clear_attempts("acme")
    store.failed_attempt("acme", "+3226000003")
    assert store.locked_until("acme", None) is None


def test_old_failures_are_forgotten(store: ModeStore, clock: task.Clock) -> None:
    store.failed_attempt("acme", CALLER)
    clock.advance(DAY + 1)
    store.failed_attempt("globex", None)
    rows = sqlite3.connect(store.path).execute("SELECT customer FROM failures").fetchall()
    assert rows == [("globex",)]


def test_failures_are_shared_between_processes(tmp_path: Path, store: ModeStore) -> None:
    other = opened(tmp_path / FILENAME, clock_at())
    store.failed_attempt("acme", CALLER)
    other.failed_attempt("acme", CALLER)
    store.failed_attempt("acme", CALLER)
    assert other.locked_until("acme", None) == T0 + 900


# -- ported numbers -----------------------------------------------------------------------


def test_ported_numbers_are_set_once_audited_and_move_the_version(
    tmp_path: Path, store: ModeStore
) -> None:
    other = opened(tmp_path / FILENAME, clock_at())
    assert store.set_ported("+3225551234", True, "cli root", "cli") is True
    assert store.set_ported("+3225551234", True, "cli root", "cli") is False
    assert other.ported() == frozenset({"+3225551234"})
    assert store.version() == 1
    assert other.set_ported("+3225551234", False, "api", "api") is True
    assert other.set_ported("+3225551234", False, "api", "api") is False
    assert store.ported() == frozenset()
    assert store.version() == 2
    assert [(e.action, e.via, e.detail) for e in store.audit_log()] == [
        ("number-port-out", "cli", "+3225551234 by cli root"),
        ("number-port-in", "api", "+3225551234 by api"),
    ]
    assert store.take_changes() == []  # not a mode change


# -- the database -------------------------------------------------------------------------


def test_a_new_database_is_wal_at_the_last_schema(store: ModeStore) -> None:
    conn = sqlite3.connect(store.path)
    assert schema_version(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_newer_database_is_refused_untouched(tmp_path: Path, store: ModeStore) -> None:
    store.close()
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0)")
    conn.close()
    with pytest.raises(ModeStoreError, match="schema version 99, newer than this engine"):
        opened(store.path, clock_at())


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ModeStoreError, match="move the file away"):
        opened(path, clock_at())


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("")
    with pytest.raises(ModeStoreError, match="cannot open the mode database"):
        ModeStore.in_data_dir(tmp_path / "var").open()
