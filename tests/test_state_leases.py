"""LeaseKeeper: what it remembers, when it renews, and the races of a call's life."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from engine.state.interface import StateUnavailableError
from engine.state.leases import LeaseKeeper
from engine.state.memory import MemoryState


class SlowState:
    """A SharedState whose answers the test gives by hand."""

    lease_ttl = 90.0

    def __init__(self) -> None:
        self.acquires: list[Deferred[bool]] = []
        self.renewals: list[list[tuple[str, str]]] = []
        self.renew_result: Deferred[None] | None = None

    def acquire(self, key: str, limit: int, lease: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.acquires.append(d)
        return d

    def release(self, key: str, lease: str) -> Deferred[None]:
        return succeed(None)

    def count(self, key: str) -> Deferred[int]:
        return succeed(0)

    def renew(self, leases: Iterable[tuple[str, str]]) -> Deferred[None]:
        self.renewals.append(list(leases))
        if self.renew_result is not None:
            return self.renew_result
        return succeed(None)


def test_a_release_sent_before_the_acquire_answers_is_not_undone() -> None:
    state = SlowState()
    keeper = LeaseKeeper(state, Clock())
    answer: list[Any] = []
    keeper.acquire("k", 1, "leg1").addBoth(answer.append)
    assert keeper.held == [("k", "leg1")]  # remembered while in flight: renewed if it wins
    keeper.release("k", "leg1")
    state.acquires[0].callback(True)
    assert answer == [True]
    assert keeper.held == []


def test_a_refused_acquire_is_forgotten() -> None:
    state = SlowState()
    keeper = LeaseKeeper(state, Clock())
    keeper.acquire("k", 1, "leg1")
    state.acquires[0].callback(False)
    assert keeper.held == []


def test_a_failed_acquire_is_forgotten_and_the_failure_passed_on() -> None:
    state = SlowState()
    keeper = LeaseKeeper(state, Clock())
    errors: list[Any] = []
    keeper.acquire("k", 1, "leg1").addErrback(errors.append)
    state.acquires[0].errback(StateUnavailableError("redis down"))
    assert keeper.held == []
    assert errors[0].check(StateUnavailableError)


def test_renews_every_third_of_the_ttl_what_is_held_then() -> None:
    state = SlowState()
    clock = Clock()
    keeper = LeaseKeeper(state, clock)
    keeper.start()
    keeper.start()  # idempotent
    keeper.acquire("a", 1, "1")
    state.acquires[0].callback(True)
    clock.advance(29.9)
    assert state.renewals == []
    clock.advance(0.1)
    assert state.renewals == [[("a", "1")]]
    keeper.acquire("b", 1, "2")
    state.acquires[1].callback(True)
    clock.advance(30)
    assert state.renewals[-1] == [("a", "1"), ("b", "2")]
    keeper.stop()
    clock.advance(300)
    assert len(state.renewals) == 2


def test_renewal_rounds_do_not_overlap_and_a_failure_does_not_stop_them() -> None:
    state = SlowState()
    clock = Clock()
    keeper = LeaseKeeper(state, clock, interval=10)
    state.renew_result = slow = Deferred()
    keeper.start()
    clock.advance(10)
    clock.advance(25)  # the first round has not answered: no second round yet
    assert len(state.renewals) == 1
    state.renew_result = None
    slow.errback(StateUnavailableError("redis down"))  # logged, not raised
    clock.advance(10)
    assert len(state.renewals) == 2
    keeper.stop()


def test_a_renewal_failure_is_logged(caplog: Any) -> None:
    state = SlowState()
    keeper = LeaseKeeper(state, Clock())
    state.renew_result = fail(StateUnavailableError("redis at h:1 is unavailable"))
    results: list[Any] = []
    keeper.renew().addBoth(results.append)
    assert results == [None]
    assert "renewing 0 lease(s) failed: redis at h:1 is unavailable" in caplog.text


def test_the_memory_backend_frees_slots_of_a_keeper_that_stopped() -> None:
    """A process that dies stops renewing: its slots come back after the TTL."""
    clock = Clock()
    state = MemoryState(clock, lease_ttl=60)
    alive, dead = LeaseKeeper(state, clock), LeaseKeeper(state, clock)
    alive.acquire("k", 2, "a")
    dead.acquire("k", 2, "b")
    alive.start()
    dead.start()
    clock.advance(20)
    dead.stop()  # "crashes" holding b
    for _ in range(6):
        clock.advance(20)
    counted: list[int] = []
    state.count("k").addCallback(counted.append)
    assert counted == [1]
    assert alive.acquire("k", 2, "c").result is True
