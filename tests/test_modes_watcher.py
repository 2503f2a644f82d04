"""The engine's view of the modes: polled on a task.Clock, shared through one SQLite file."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from twisted.internet import task

from engine.modes.store import FILENAME, ModeChange, ModeStore
from engine.modes.watcher import ModeWatcher

T0 = 1_796_112_000.0  # 2026-12-01T08:00:00Z
DAY = 86400.0


class Engine:
    """One process: its own store on the shared file, and a watcher recording what it hears."""

    def __init__(self, path: Path, clock: task.Clock, **options: float) -> None:
        self.store = ModeStore(path, clock.seconds, **options)
        self.store.open()
        self.heard: list[ModeChange] = []
        self.watcher = ModeWatcher(self.store, clock, on_change=self.heard.extend)


@pytest.fixture
def clock() -> task.Clock:
    clock = task.Clock()
    clock.advance(T0)
    return clock


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / FILENAME


def test_start_loads_the_modes_and_ported_numbers(path: Path, clock: task.Clock) -> None:
    setup = Engine(path, clock)
    setup.store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    setup.store.set_ported("+3225551234", True, "cli", "cli")
    watcher = Engine(path, clock).watcher
    watcher.start()
    assert watcher.mode_of("acme") == "drs"
    assert watcher.mode_of("globex") == "normal"
    assert watcher.modes == {"acme": "drs"}
    assert watcher.is_ported("+3225551234")
    assert not watcher.is_ported("+3225551235")


def test_a_change_by_another_process_is_in_effect_within_one_poll(
    path: Path, clock: task.Clock
) -> None:
    engine, cli = Engine(path, clock), Engine(path, clock)
    engine.watcher.start()
    cli.store.set_mode("acme", "continuity", None, "cli root", "cli")
    cli.store.set_ported("+3225551234", True, "cli root", "cli")
    assert engine.watcher.mode_of("acme") == "normal"  # not before the next poll
    clock.advance(0.25)
    assert engine.watcher.mode_of("acme") == "continuity"
    assert engine.watcher.is_ported("+3225551234")
    [change] = engine.heard
    assert (change.customer, change.old.mode, change.new.mode, change.via) == \
        ("acme", "normal", "continuity", "cli")  # fmt: skip


def test_every_change_is_reported_once_across_watchers(path: Path, clock: task.Clock) -> None:
    a, b, cli = Engine(path, clock), Engine(path, clock), Engine(path, clock)
    a.watcher.start()
    b.watcher.start()
    cli.store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    cli.store.set_mode("acme", "normal", None, "cli", "cli")  # both before any poll
    cli.store.set_mode("globex", "drs", T0 + DAY, "cli", "cli")
    clock.advance(0.25)
    assert a.watcher.modes == b.watcher.modes == {"globex": "drs"}
    heard = a.heard + b.heard
    assert [(c.customer, c.new.mode) for c in heard] == \
        [("acme", "drs"), ("acme", "normal"), ("globex", "drs")]  # fmt: skip


def test_an_expiry_is_reported_once_across_two_watchers(path: Path, clock: task.Clock) -> None:
    a, b = Engine(path, clock), Engine(path, clock)
    a.store.set_mode("acme", "drs", T0 + DAY, "phone +3226001122", "phone")
    a.watcher.start()
    b.watcher.start()
    a.heard.clear()
    b.heard.clear()
    clock.advance(DAY - 0.25)
    assert a.watcher.mode_of("acme") == b.watcher.mode_of("acme") == "drs"
    clock.advance(0.25)
    assert a.watcher.mode_of("acme") == b.watcher.mode_of("acme") == "normal"
    [expiry] = a.heard + b.heard
    assert (expiry.customer, expiry.new.by, expiry.via) == ("acme", "expiry", "expiry")
    assert expiry.old.until == T0 + DAY


def test_an_expiry_due_while_no_engine_ran_happens_at_start(
    path: Path, clock: task.Clock
) -> None:
    Engine(path, clock).store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    clock.advance(2 * DAY)  # the engines were down when it was due
    engine = Engine(path, clock)
    engine.watcher.start()
    assert engine.watcher.mode_of("acme") == "normal"
    assert [c.via for c in engine.heard] == ["cli", "expiry"]


def test_refresh_puts_a_change_of_this_process_in_effect_at_once(
    path: Path, clock: task.Clock
) -> None:
    engine = Engine(path, clock)
    engine.watcher.start()
    engine.store.set_mode("acme", "drs", T0 + DAY, "phone +3226001122", "phone")
    engine.watcher.refresh()
    assert engine.watcher.mode_of("acme") == "drs"
    assert [c.via for c in engine.heard] == ["phone"]
    clock.advance(0.25)
    assert len(engine.heard) == 1


def test_stop_ends_the_polling(path: Path, clock: task.Clock) -> None:
    engine, cli = Engine(path, clock), Engine(path, clock)
    engine.watcher.start()
    engine.watcher.stop()
    assert clock.getDelayedCalls() == []
    cli.store.set_mode("acme", "drs", T0 + DAY, "cli", "cli")
    clock.advance(1)
    assert engine.watcher.mode_of("acme") == "normal"


def test_without_on_change_the_view_still_follows(path: Path, clock: task.Clock) -> None:
    store = Engine(path, clock).store
    watcher = ModeWatcher(store, clock)
    watcher.start()
    store.set_mode("acme", "drs", T0 + 1, "cli", "cli")
    clock.advance(0.25)
    assert watcher.mode_of("acme") == "drs"
    clock.advance(1)
    assert watcher.mode_of("acme") == "normal"


def test_a_locked_database_keeps_the_last_view_and_is_retried(
    path: Path, clock: task.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(path, clock, busy_timeout=0.01)
    engine.store.set_mode("acme", "drs", T0 + 1, "cli", "cli")
    engine.watcher.start()
    engine.heard.clear()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with caplog.at_level(logging.WARNING, "vms.modes"):
        clock.advance(1)  # the expiry is due
    assert caplog.text.count("cannot read the customer modes") == 1  # rate limited
    assert engine.watcher.mode_of("acme") == "drs"
    blocker.execute("ROLLBACK")
    clock.advance(0.25)
    assert engine.watcher.mode_of("acme") == "normal"
    assert [c.via for c in engine.heard] == ["expiry"]


def test_ported_changes_are_logged(
    path: Path, clock: task.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    engine, cli = Engine(path, clock), Engine(path, clock)
    engine.watcher.start()
    with caplog.at_level(logging.INFO, "vms.modes"):
        cli.store.set_ported("+3225551234", True, "cli", "cli")
        clock.advance(0.25)
        cli.store.set_ported("+3225551234", False, "cli", "cli")
        clock.advance(0.25)
    assert [r.getMessage() for r in caplog.records] == [
        "number +3225551234 is marked ported away: its calls get 404 from now on",
        "number +3225551234 is no longer marked ported away: it is served again",
    ]


def test_interval_must_be_positive(path: Path, clock: task.Clock) -> None:
    with pytest.raises(ValueError, match="interval"):
        ModeWatcher(Engine(path, clock).store, clock, interval=0)
