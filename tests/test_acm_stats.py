"""ACM statistics: the scripted day of tests/acmdaykit.py, its figures worked out by hand."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from acmdaykit import ACM, DAY_EVENTS, SINCE, UNTIL, at, clock_at, stats_store
from twisted.internet.task import Clock

from engine.acm.erlang import agents_needed
from engine.acm.events import AcmEvent
from engine.acm.mailconfig import EmailSettings
from engine.acm.report import (
    SERVICE_TARGET,
    OperatorFigures,
    QueueFigures,
    Report,
    Staffing,
    as_json,
    compute,
    default_window,
    with_live,
)
from engine.acm.stats import (
    _COLUMNS,
    _PURGE,
    _WINDOW,
    FILENAME,
    MIGRATIONS,
    StatsError,
    StatsStore,
    open_readonly,
    read_events,
)
from engine.cdr.migrations import migrate, schema_version

SALES_CALLS = QueueFigures(
    "sales", "call", offered=6, answered=2, abandoned=2, timeout=1, no_agents=0, waiting=1,
    answered_in_target=1, abandoned_in_target=1,
    service_level=100 * 1 / (6 - 1 - 1),  # c1 of c1, c2, c4, c5 (c3 short, c6 undecided)
    average_speed_of_answer=(10 + 25) / 2, longest_wait=300.0, oldest_waiting=10.0,
    handled=2, talk_time=300 + 600, wrap_up_time=30 + 20, average_handling_time=(900 + 50) / 2,
)  # fmt: skip
SALES_EMAILS = QueueFigures(
    "sales", "email", offered=1, answered=1, answered_in_target=0, service_level=0.0,
    average_speed_of_answer=1800.0, longest_wait=1800.0, handled=1, talk_time=300.0,
    average_handling_time=300.0,
)  # fmt: skip
SUPPORT_CALLS = QueueFigures(
    "support", "call", offered=2, answered=1, no_agents=1, answered_in_target=1,
    service_level=50.0, average_speed_of_answer=10.0, longest_wait=10.0, handled=1,
    talk_time=1200.0, wrap_up_time=60.0, average_handling_time=1260.0,
)  # fmt: skip
ALL_CALLS = QueueFigures(
    "", "call", offered=8, answered=3, abandoned=2, timeout=1, no_agents=1, waiting=1,
    answered_in_target=2, abandoned_in_target=1, service_level=100 * 2 / (8 - 1 - 1),
    average_speed_of_answer=(10 + 25 + 10) / 3, longest_wait=300.0, oldest_waiting=10.0,
    handled=3, talk_time=2100.0, wrap_up_time=110.0, average_handling_time=2210 / 3,
)  # fmt: skip
ALL_EMAILS = QueueFigures(
    "", "email", offered=1, answered=1, service_level=0.0, average_speed_of_answer=1800.0,
    longest_wait=1800.0, handled=1, talk_time=300.0, average_handling_time=300.0,
)  # fmt: skip
ANNA = OperatorFigures(
    "anna", handled=2, no_answers=1, talk_time=300 + 300, wrap_up_time=30,
    idle_time=605 + 2662 + 10783 + 9000,  # 09:00-09:10:05, 09:15:40-10:00:02, -13:00, 13:30-16:00
    ringing_time=5 + 15, break_time=1800, logged_in_time=7 * 3600,
)  # fmt: skip
BERT = OperatorFigures(
    "bert", handled=2, no_answers=0, talk_time=600 + 1200, wrap_up_time=20 + 60,
    idle_time=1820 + 13760 + 9530,  # 09:30-10:00:20, 10:10:45-14:00:05, 14:21:10-17:00
    ringing_time=10, break_time=0, logged_in_time=7.5 * 3600,
)  # fmt: skip
# Erlang C by hand, one operator: C = A, SL = 1 - A·exp(-(1 - A)·T/AHT).
# sales: A = 0.75 calls/h × 475 s = 0.099 erlang, SL(1) = 0.905 >= 0.8: one operator.
# support: A = 0.25 × 1260 / 3600 = 0.0875, SL(1) = 0.914: one.
SALES_STAFF = Staffing("sales", 6 / 8, 475.0, 20.0, SERVICE_TARGET, 1,
                       (7 * 3600 - 1800 + 7.5 * 3600) / (8 * 3600))  # fmt: skip
SUPPORT_STAFF = Staffing("support", 2 / 8, 1260.0, 30.0, SERVICE_TARGET, 1, 7.5 / 8)


def test_the_scripted_day() -> None:
    report = compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL)
    assert report.queues == (SALES_CALLS, SALES_EMAILS, SUPPORT_CALLS)
    assert report.channels == (ALL_CALLS, ALL_EMAILS)
    assert report.operators == (ANNA, BERT)
    assert report.staffing == (SALES_STAFF, SUPPORT_STAFF)


def test_operator_times_add_up_to_the_time_logged_in() -> None:
    for o in compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL).operators:
        on_call = {"anna": 300, "bert": 600 + 1200}[o.operator]  # no bucket of its own
        assert o.idle_time + o.ringing_time + o.wrap_up_time + o.break_time + on_call == \
            o.logged_in_time  # fmt: skip


def test_one_group_and_other_customers() -> None:
    noise = [AcmEvent(at("10:00:00"), "globex", "queued", group="support", contact="x")]
    report = compute(DAY_EVENTS + noise, "acme", ACM, SINCE, UNTIL, groups=["support"])
    assert report.queues == (SUPPORT_CALLS,)
    assert report.channels == (
        QueueFigures("", "call", **{k: v for k, v in vars(SUPPORT_CALLS).items()
                                    if k not in ("group", "channel")}),
        QueueFigures("", "email"),
    )  # fmt: skip
    assert report.operators == (BERT,)  # anna is not in support
    assert report.staffing == (SUPPORT_STAFF,)


def test_a_shorter_window_clips_states_and_leaves_earlier_contacts_out() -> None:
    report = compute(DAY_EVENTS, "acme", ACM, at("10:00:00"), at("11:00:00"))
    sales = report.queues[0]
    assert (sales.offered, sales.answered, sales.handled, sales.talk_time) == (1, 1, 1, 600.0)
    anna = report.operators[0]
    assert (anna.handled, anna.no_answers, anna.talk_time) == (0, 1, 0.0)  # e1 was before
    assert anna.ringing_time == 15
    assert anna.idle_time == 2 + (3600 - 17)
    assert anna.logged_in_time == 3600


def test_staffing_follows_erlang_c_for_a_busy_group() -> None:
    events = []
    for i in range(120):  # 120 calls in an hour, 10 s wait, 180 s talk, no wrap-up
        start = SINCE + i * 30
        events += [AcmEvent(start, "acme", "queued", group="sales", contact=f"b{i}"),
                   AcmEvent(start + 10, "acme", "answered", group="sales", contact=f"b{i}",
                            operator="anna"),
                   AcmEvent(start + 190, "acme", "ended", group="sales", contact=f"b{i}",
                            operator="anna")]  # fmt: skip
    staffing = compute(events, "acme", ACM, SINCE, SINCE + 3600).staffing[0]
    assert (staffing.offered_per_hour, staffing.average_handling_time) == (120.0, 180.0)
    assert staffing.needed == agents_needed(120, 180, 0.8, 20) == 9  # 6 erlangs
    assert staffing.observed == 0.0  # nobody logged in: the events say so


def test_nothing_happened() -> None:
    report = compute([], "acme", ACM, SINCE, UNTIL)
    assert report.queues == (QueueFigures("sales", "call"), QueueFigures("support", "call"))
    assert report.staffing[0] == Staffing("sales", 0.0, None, 20.0, 0.8, 0, 0.0)
    assert [o.logged_in_time for o in report.operators] == [0.0, 0.0]
    with pytest.raises(ValueError, match="must end after it starts"):
        compute([], "acme", ACM, UNTIL, SINCE)


def test_live_waits_replace_the_events_guess() -> None:
    report = with_live(compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL),
                       {"sales": (3, 42.0), "support": (1, 7.0)})  # fmt: skip
    assert [(q.waiting, q.oldest_waiting) for q in report.queues] == \
        [(3, 42.0), (0, None), (1, 7.0)]  # the e-mail queue keeps the events' view  # fmt: skip
    assert (report.channels[0].waiting, report.channels[0].oldest_waiting) == (4, 42.0)


def test_json_and_the_default_window() -> None:
    body = as_json(compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL))
    assert (body["since"], body["until"]) == ("2026-12-01T09:00:00Z", "2026-12-01T17:00:00Z")
    assert body["queues"][0]["service_level"] == 25.0
    assert body["channels"][0]["average_handling_time"] == 736.667
    assert body["staffing"][0]["needed"] == 1
    assert default_window(at("13:14:15")) == (at("00:00:00"), at("13:14:15"))


# -- the store ------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return clock_at("08:00:00")


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[StatsStore]:
    opened = stats_store(tmp_path, clock)
    yield opened
    opened.close()


def report_of(path: Path, clock: Clock) -> Report:
    reopened = StatsStore(path, clock)
    reopened.open()
    try:
        return reopened.report("acme", ACM, SINCE, UNTIL)
    finally:
        reopened.close()


def committed(path: Path) -> int:
    conn = open_readonly(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def test_events_are_committed_in_batches_off_the_hot_path(
    store: StatsStore, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / FILENAME
    for e in DAY_EVENTS[:10]:
        store.record(e)
    assert (store.pending, committed(path)) == (10, 0)  # record() did not touch the disk
    assert store.report("acme", ACM, SINCE, UNTIL) == \
        compute(DAY_EVENTS[:10], "acme", ACM, SINCE, UNTIL)  # pending ones count  # fmt: skip
    clock.advance(0.49)
    assert committed(path) == 0
    clock.advance(0.01)
    assert (store.pending, committed(path)) == (0, 10)
    assert not clock.getDelayedCalls()  # idle: no timer


def test_a_restart_gives_the_same_report(store: StatsStore, clock: Clock, tmp_path: Path) -> None:
    for e in DAY_EVENTS:
        store.record(e)
    clock.advance(0.5)
    before = store.report("acme", ACM, SINCE, UNTIL)
    store.close()
    assert report_of(tmp_path / FILENAME, clock) == before == \
        compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL)  # fmt: skip


def test_a_clean_stop_loses_nothing(store: StatsStore, clock: Clock, tmp_path: Path) -> None:
    for e in DAY_EVENTS:
        store.record(e)
    store.close()  # before any timer fired
    assert committed(tmp_path / FILENAME) == len(DAY_EVENTS)
    store.record(DAY_EVENTS[0])  # after close: dropped, not raised
    assert store.dropped == 1


def test_a_crash_loses_at_most_the_unflushed_batch(
    store: StatsStore, clock: Clock, tmp_path: Path
) -> None:
    half = len(DAY_EVENTS) // 2
    for e in DAY_EVENTS[:half]:
        store.record(e)
    clock.advance(0.5)
    for e in DAY_EVENTS[half:]:
        store.record(e)
    # The process dies here: another one reads the file.
    assert report_of(tmp_path / FILENAME, clock) == \
        compute(DAY_EVENTS[:half], "acme", ACM, SINCE, UNTIL)  # fmt: skip


def test_a_failing_commit_keeps_the_batch(store: StatsStore, clock: Clock, tmp_path: Path) -> None:
    locker = sqlite3.connect(tmp_path / FILENAME, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    store.record(DAY_EVENTS[0])
    clock.advance(0.5)
    assert store.pending == 1 and not store.flush()
    locker.execute("ROLLBACK")
    locker.close()
    clock.advance(0.5)
    assert (store.pending, committed(tmp_path / FILENAME)) == (0, 1)


def test_bad_events_are_dropped_not_raised(store: StatsStore) -> None:
    store.record(AcmEvent(SINCE, "acme", "exploded"))
    store.record(AcmEvent(SINCE, "acme", "queued", channel="fax"))
    assert (store.pending, store.dropped) == (0, 2)


def test_a_full_backlog_drops_new_events(tmp_path: Path, clock: Clock) -> None:
    small = StatsStore(tmp_path / FILENAME, clock, max_batch=2, max_pending=3)
    for e in DAY_EVENTS[:5]:  # before open(): kept for it, up to max_pending
        small.record(e)
    assert (small.pending, small.dropped) == (3, 2)
    small.open()
    clock.advance(0.5)  # one batch of 2, then the rest at once
    clock.advance(0)
    assert small.pending == 0
    small.close()
    assert committed(tmp_path / FILENAME) == 3


def test_unusable_databases(tmp_path: Path, clock: Clock) -> None:
    with pytest.raises(StatsError, match="no ACM statistics in"):
        open_readonly(tmp_path / FILENAME)
    (tmp_path / "junk.sqlite").write_text("not a database, long enough to be read " * 100)
    with pytest.raises(StatsError, match="cannot use the ACM statistics"):
        StatsStore(tmp_path / "junk.sqlite", clock).open()
    newer = tmp_path / "newer.sqlite"
    StatsStore(newer, clock).open()
    conn = sqlite3.connect(newer, isolation_level=None)
    conn.execute("INSERT INTO schema_version VALUES (?, 'future', 0)", (len(MIGRATIONS) + 1,))
    conn.close()
    with pytest.raises(StatsError, match="newer than this engine knows"):
        StatsStore(newer, clock).open()
    with pytest.raises(StatsError, match="newer than this engine knows"):
        open_readonly(newer)


# -- reading a window: the index, the snapshot -----------------------------------------


def test_each_operators_state_at_since_is_found_through_the_index(
    store: StatsStore, tmp_path: Path
) -> None:
    conn = open_readonly(tmp_path / FILENAME)
    try:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {_WINDOW}",
                                               ("acme", SINCE, UNTIL, 1))]  # fmt: skip
    finally:
        conn.close()
    lookups = [step for step in plan if "operator_states" in step]
    assert len(lookups) == 3, plan  # the first operator, the next one, each one's last state
    assert "SEARCH events USING INDEX operator_states (customer=? AND operator=? AND at<?)" \
        in plan  # fmt: skip
    assert not [step for step in plan if "SCAN events" in step or "(customer=? AND at<?)" in step]


def test_operators_states_before_the_window_many_operators(store: StatsStore, clock: Clock) -> None:
    events = [
        AcmEvent(at("08:00:00") + i, "acme", "operator", operator=f"op{i % 5}", detail=state)
        for i, state in enumerate(["available", "break", "wrap_up", "logged_out"] * 10)
    ]
    events += [
        AcmEvent(at("10:00:00"), "acme", "operator", operator="op9", detail="available"),
        AcmEvent(at("08:30:00"), "globex", "operator", operator="op0", detail="break"),
    ]
    for e in events:
        store.record(e)
    store.flush()
    assert store.report("acme", ACM, SINCE, UNTIL) == compute(events, "acme", ACM, SINCE, UNTIL)
    states = {e.operator: e.detail for e in store.events("acme", SINCE, UNTIL)
              if e.at < SINCE}  # fmt: skip
    assert states == {
        f"op{i}": ["available", "break", "wrap_up", "logged_out"][(35 + i) % 4] for i in range(5)
    }  # each one's last: event 35 + i; op9 came later


def test_a_snapshot_counts_each_event_once(store: StatsStore, tmp_path: Path) -> None:
    half = len(DAY_EVENTS) // 2
    for e in DAY_EVENTS[:half]:
        store.record(e)
    store.flush()
    for e in DAY_EVENTS[half:]:
        store.record(e)
    upto, pending = store.snapshot("acme", UNTIL)
    assert pending == [e for e in DAY_EVENTS[half:] if e.customer == "acme" and e.at < UNTIL]
    store.flush()  # committed between the snapshot and the read in the worker thread
    conn = open_readonly(tmp_path / FILENAME)
    try:
        events = read_events(conn, "acme", SINCE, UNTIL, upto) + pending
        assert len(read_events(conn, "acme", SINCE, UNTIL)) > len(events) - len(pending)
    finally:
        conn.close()
    assert compute(events, "acme", ACM, SINCE, UNTIL) == \
        compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL)  # fmt: skip


# -- retention --------------------------------------------------------------------------


DAYS = 86400.0


def test_old_events_are_purged_in_batches_keeping_each_operators_state(
    tmp_path: Path, clock: Clock
) -> None:
    store = StatsStore(tmp_path / FILENAME, clock, keep_days=30, purge_batch=3)
    store.open()
    now = clock.seconds()
    old = [AcmEvent(now - 40 * DAYS + i, "acme", "queued", group="sales", contact=f"o{i}")
           for i in range(5)]  # fmt: skip
    states = [AcmEvent(now - 50 * DAYS, "acme", "operator", operator="anna", detail="break"),
              AcmEvent(now - 35 * DAYS, "acme", "operator", operator="anna",
                       detail="available"),
              AcmEvent(now - 45 * DAYS, "acme", "operator", operator="bert", detail="break"),
              AcmEvent(now - 45 * DAYS, "globex", "operator", operator="anna",
                       detail="logged_out")]  # fmt: skip
    recent = [
        AcmEvent(now - 1 * DAYS, "acme", "operator", operator="anna", detail="break"),
        AcmEvent(now - 1 * DAYS, "acme", "queued", group="sales", contact="r1"),
    ]
    everything = old + states + recent
    for e in everything:
        store.record(e)
    clock.advance(0.5)  # committed, and a first batch of 3 purged
    assert (store.pending, store.purged) == (0, 3)
    clock.advance(0.5)
    clock.advance(0.5)  # batch by batch, though no event came: 3 more, then the last 0
    assert store.purged == 6 and not clock.getDelayedCalls()
    window = (now - 30 * DAYS, now)
    left = store.events("acme", *window)
    assert sorted(e.at for e in left) == sorted(e.at for e in [*states[1:3], *recent])
    assert store.report("acme", ACM, *window) == compute(everything, "acme", ACM, *window)
    for since in (now - 30 * DAYS, now - 2 * DAYS, now - 0.5 * DAYS):  # any window inside
        assert store.report("acme", ACM, since, now) == \
            compute(everything, "acme", ACM, since, now)  # fmt: skip
    # At most one purge an hour: an old event recorded now waits for the next one.
    store.record(AcmEvent(now - 60 * DAYS, "acme", "queued", group="sales", contact="late"))
    clock.advance(0.5)
    assert store.purged == 6
    clock.advance(3600)
    store.record(AcmEvent(now, "acme", "queued", group="sales", contact="next"))
    clock.advance(0.5)
    assert store.purged == 7
    store.close()


def test_the_retention_can_be_turned_off(tmp_path: Path, clock: Clock) -> None:
    store = StatsStore(tmp_path / FILENAME, clock, keep_days=None)
    store.open()
    store.record(AcmEvent(clock.seconds() - 5000 * DAYS, "acme", "queued", contact="x"))
    clock.advance(0.5)
    store.close()
    assert (store.purged, committed(tmp_path / FILENAME)) == (0, 1)
    with pytest.raises(ValueError, match="keep_days > 0"):
        StatsStore(tmp_path / FILENAME, clock, keep_days=0)


def test_a_version_1_database_is_upgraded(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, 0.0, MIGRATIONS[:1])
    conn.execute(f"INSERT INTO events ({_COLUMNS}) VALUES (?, 'acme', 'queued', 'call', "
                 "'sales', 'c', '', '')", (SINCE,))  # fmt: skip
    conn.close()
    store = StatsStore(path, clock)
    store.open()
    store.close()
    conn = open_readonly(path)
    try:
        assert schema_version(conn) == len(MIGRATIONS) == 2
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'events_by_age'")\
            .fetchone() == ("events_by_age",)  # fmt: skip
        plan = [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {_PURGE}", (SINCE, 10))]
    finally:
        conn.close()
    assert "SEARCH old USING INDEX events_by_age (at<?)" in plan
    assert committed(path) == 1


def test_e_mails_are_answered_in_time_by_their_own_threshold() -> None:
    email = EmailSettings("sales", service_level=3 * 3600.0)
    acm = replace(ACM, email=email)
    events = [
        AcmEvent(at("09:00:00"), "acme", "queued", "email", "sales", "m1"),
        AcmEvent(at("11:00:00"), "acme", "answered", "email", "sales", "m1", "anna"),
        AcmEvent(at("09:00:00"), "acme", "queued", "email", "sales", "m2"),
        AcmEvent(at("13:00:00"), "acme", "answered", "email", "sales", "m2", "anna"),
    ]
    report = compute(events, "acme", acm, at("08:00:00"), at("17:00:00"))
    (mail,) = [q for q in report.queues if q.channel == "email"]
    assert (mail.answered, mail.answered_in_target, mail.service_level) == (2, 1, 50.0)
