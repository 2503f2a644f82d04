"""The timing wheel: never early, at most one tick late, cheap cancellation, one reactor call."""

from __future__ import annotations

from twisted.internet.task import Clock

from engine.sip.overload import Overload
from engine.sip.timers import TimerQueue


def test_timers_fire_in_order_never_early_and_within_one_tick() -> None:
    clock = Clock()
    timers = TimerQueue(clock, resolution=0.01)
    fired: list[tuple[str, float]] = []
    for name, delay in [("c", 0.5), ("a", 0.013), ("b", 0.2), ("d", 32.0)]:
        timers.call_later(delay, lambda n=name: fired.append((n, clock.seconds())))
    for _ in range(4000):
        clock.advance(0.001)
    want = {"a": 0.013, "b": 0.2, "c": 0.5, "d": 32.0}
    assert [n for n, _ in fired] == ["a", "b", "c"]
    for name, at in fired:
        assert want[name] - 1e-9 <= at <= want[name] + 0.01 + 1e-9
    clock.advance(29)
    assert [n for n, _ in fired] == ["a", "b", "c", "d"]
    assert len(timers) == 0


def test_deadlines_on_a_tick_boundary_fire_on_that_tick() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    fired = []
    timers.call_later(0.5, fired.append, 1)
    clock.advance(0.25)
    clock.advance(0.25)
    assert fired == [1]


def test_cancelled_timers_do_not_fire_and_cost_no_reactor_call() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    fired = []
    handles = [timers.call_later(1.0, fired.append, i) for i in range(1000)]
    assert len(clock.getDelayedCalls()) == 1  # one reactor call for a thousand timers
    for handle in handles[1:]:
        handle.cancel()
        handle.cancel()  # idempotent
    assert not handles[1].active and handles[0].active
    clock.advance(1.0)
    assert fired == [0]
    assert clock.getDelayedCalls() == []


def test_an_earlier_timer_rearms_the_reactor_call() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    fired = []
    timers.call_later(10, fired.append, "late")
    timers.call_later(0.1, fired.append, "early")
    clock.advance(0.1)
    assert fired == ["early"]
    clock.advance(10)
    assert fired == ["early", "late"]


def test_a_failing_callback_does_not_stop_the_others() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    fired = []

    def boom() -> None:
        raise RuntimeError("bug")

    timers.call_later(0.1, boom)
    timers.call_later(0.1, fired.append, "after")
    timers.call_later(0.2, fired.append, "later")
    clock.advance(0.3)
    assert fired == ["after", "later"]


def test_callbacks_may_schedule_more_timers() -> None:
    clock = Clock()
    timers = TimerQueue(clock)
    fired: list[float] = []

    def again() -> None:
        fired.append(clock.seconds())
        if len(fired) < 3:
            timers.call_later(0.5, again)

    timers.call_later(0.5, again)
    for _ in range(8):
        clock.advance(0.25)
    assert fired == [0.5, 1.0, 1.5]


def test_overload_from_queue_age_and_loop_lag() -> None:
    overload = Overload(max_delay=0.2)
    assert overload.note_queue_age(0.05, now=100.0) is False
    assert overload.note_queue_age(0.3, now=100.1) is True
    assert overload.overloaded(100.5) is True
    assert overload.overloaded(101.2) is False  # a stale queue age no longer counts
    assert overload.note_loop_lag(0.25, now=101.3) is True
    assert overload.note_loop_lag(0.0, now=101.4) is False
    assert overload.episodes == 2
