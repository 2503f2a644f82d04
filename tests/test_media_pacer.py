"""The shared 20 ms pacer: ticks on an absolute schedule, one timer, catch-up and skipping."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from media.pacer import Pacer


class Member:
    def __init__(self, clock: Clock, ticks: int = 10**9) -> None:
        self.clock = clock
        self.times: list[float] = []
        self.left = ticks

    def on_tick(self) -> bool:
        self.times.append(self.clock.seconds())
        self.left -= 1
        return self.left > 0


def test_ticks_follow_the_absolute_schedule_not_the_lateness_of_the_last() -> None:
    clock = Clock()
    clock.advance(100.0)
    pacer = Pacer(clock)
    member = Member(clock)
    pacer.add(member)
    clock.advance(0)
    # Every wake-up comes 7 ms late; a callLater(0.02) chain would drift 7 ms per packet.
    for n in range(1, 500):
        clock.advance(100.0 + n * 0.02 + 0.007 - clock.seconds())
        (call,) = clock.getDelayedCalls()
        assert call.getTime() == pytest.approx(100.0 + (n + 1) * 0.02)
    assert len(member.times) == 500
    assert member.times[-1] == pytest.approx(100.0 + 499 * 0.02 + 0.007)


def test_one_timer_serves_every_member_and_stops_with_the_last() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    members = [Member(clock, ticks=3 + i) for i in range(100)]
    for member in members:
        pacer.add(member)
    clock.advance(0)
    assert len(clock.getDelayedCalls()) == 1
    for _ in range(200):
        clock.advance(0.02)
    assert [len(m.times) for m in members] == [3 + i for i in range(100)]
    assert clock.getDelayedCalls() == []
    assert len(pacer) == 0


def test_a_short_stall_is_caught_up_a_long_one_skipped() -> None:
    clock = Clock()
    pacer = Pacer(clock, max_catch_up=3)
    member = Member(clock)
    pacer.add(member)
    clock.advance(0)
    clock.advance(0.06)  # ticks 1, 2, 3 due at once: all run
    assert len(member.times) == 4
    clock.advance(1.0)  # 50 ticks due: only the current one runs
    assert len(member.times) == 5
    assert pacer.skipped == 49
    (call,) = clock.getDelayedCalls()
    assert call.getTime() == pytest.approx(1.08)


def test_members_join_on_the_running_grid_and_a_failing_one_is_dropped() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    first = Member(clock)
    pacer.add(first)
    clock.advance(0.005)
    late = Member(clock)
    pacer.add(late)
    clock.advance(0.015)
    assert late.times == [pytest.approx(0.02)]

    class Broken:
        def on_tick(self) -> bool:
            raise RuntimeError("boom")

    broken = Broken()
    pacer.add(broken)
    clock.advance(0.02)
    assert broken not in pacer
    assert len(first.times) == 3


def test_adding_from_inside_a_tick_does_not_start_a_second_timer() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    joiner = Member(clock)

    class Starter:
        def on_tick(self) -> bool:
            pacer.add(joiner)
            return False

    pacer.add(Starter())
    clock.advance(0)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0.02)
    assert joiner.times == [pytest.approx(0.02)]
