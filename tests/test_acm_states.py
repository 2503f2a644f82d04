"""The operator state table: every row walked, every missing row refused, timers on a Clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from engine.acm.model import Group
from engine.acm.states import AUTO_BREAK_REASON, OperatorState, RefusedError

SALES = Group("sales", wrap_up=10, auto_break_after=3)
NEVER = Group("support", wrap_up=5, auto_break_after=0)

#: How to reach each state from logged_out: (event, arg) in order.
PATHS: dict[str, list[tuple[str, Any]]] = {
    "logged_out": [],
    "available": [("login", None)],
    "break": [("login", None), ("break", "lunch")],
    "reserved": [("login", None), ("reserve", SALES)],
    "ringing": [("login", None), ("reserve", SALES), ("offer", None)],
    "on_call": [("login", None), ("reserve", SALES), ("offer", None), ("answer", None)],
    "wrap_up": [("login", None), ("reserve", SALES), ("offer", None), ("answer", None),
                ("hang_up", None)],
}  # fmt: skip
EVENTS = {event for _, event in OperatorState.TABLE}
ARGS: dict[str, Any] = {"break": "coffee", "reserve": SALES}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, machine: OperatorState, event: str) -> None:
        self.seen.append((machine.state, event))


def operator_in(state: str, clock: Clock | None = None) -> tuple[OperatorState, Recorder]:
    recorder = Recorder()
    op = OperatorState("anna", clock or Clock(), recorder)
    for event, arg in PATHS[state]:
        op.fire(event, arg)
    assert op.state == state
    recorder.seen.clear()
    return op, recorder


def test_every_state_is_reachable_and_named() -> None:
    assert OperatorState.states() == set(PATHS)


@pytest.mark.parametrize(("state", "event"), sorted(OperatorState.TABLE))
def test_every_row(state: str, event: str) -> None:
    after, _ = OperatorState.TABLE[state, event]
    if event == "auto_break":  # what no_answer becomes at the group's limit
        op, seen = operator_in(state)
        op.group = Group("sales", auto_break_after=1)
        op.fire("no_answer")
    else:
        op, seen = operator_in(state)
        if event == "no_answer":
            op.group = NEVER
        op.fire(event, ARGS.get(event))
    assert op.state == after
    assert seen.seen == [(after, event)]


@pytest.mark.parametrize(
    ("state", "event"),
    sorted((s, e) for s in PATHS for e in EVENTS if (s, e) not in OperatorState.TABLE),
)
def test_every_missing_row_is_refused_and_changes_nothing(state: str, event: str) -> None:
    op, seen = operator_in(state)
    before = (op.state, op.since, op.misses, op.reason, op.calls_handled)
    with pytest.raises(RefusedError) as info:
        op.fire(event, ARGS.get(event))
    assert (info.value.state, info.value.event) == (state, event)
    assert (op.state, op.since, op.misses, op.reason, op.calls_handled) == before
    assert seen.seen == []


def test_the_refusal_says_what_and_why() -> None:
    op, _ = operator_in("on_call")
    with pytest.raises(RefusedError, match="operator 'anna' is on call: cannot logout"):
        op.fire("logout")


def test_a_break_needs_a_reason_and_a_reservation_its_group() -> None:
    op, seen = operator_in("available")
    with pytest.raises(ValueError, match="a break needs a reason"):
        op.fire("break", "")
    with pytest.raises(TypeError, match="reserve needs the Group"):
        op.fire("reserve", "sales")
    assert op.state == "available" and seen.seen == []
    op.fire("break", "training")
    assert op.reason == "training"
    op.fire("resume")
    assert op.reason is None


def ring_unanswered(op: OperatorState, group: Group) -> None:
    op.fire("reserve", group)
    op.fire("offer")
    op.fire("no_answer")


def test_auto_break_after_consecutive_unanswered_offers() -> None:
    op, seen = operator_in("available")
    ring_unanswered(op, SALES)
    ring_unanswered(op, SALES)
    assert (op.state, op.misses) == ("available", 2)
    ring_unanswered(op, SALES)
    assert (op.state, op.reason, op.misses) == ("break", AUTO_BREAK_REASON, 3)
    assert seen.seen[-1] == ("break", "auto_break")
    op.fire("resume")
    assert op.misses == 0  # back from break: a fresh count
    ring_unanswered(op, SALES)
    assert op.state == "available"


def test_an_answer_resets_the_count() -> None:
    op, _ = operator_in("available")
    ring_unanswered(op, SALES)
    ring_unanswered(op, SALES)
    for event, arg in [("reserve", SALES), ("offer", None), ("answer", None),
                       ("hang_up", None), ("wrap_up_done", None)]:  # fmt: skip
        op.fire(event, arg)
    ring_unanswered(op, SALES)
    ring_unanswered(op, SALES)
    assert (op.state, op.misses, op.calls_handled) == ("available", 2, 1)


def test_the_offering_groups_limit_applies_and_zero_never_breaks() -> None:
    op, _ = operator_in("available")
    for _ in range(10):
        ring_unanswered(op, NEVER)
    assert (op.state, op.misses) == ("available", 10)
    ring_unanswered(op, SALES)  # the count runs across groups; sales' limit is 3
    assert op.state == "break"


def test_wrap_up_ends_after_the_groups_seconds() -> None:
    clock = Clock()
    op, seen = operator_in("on_call", clock)
    clock.advance(100)
    op.fire("hang_up")
    assert (op.state, op.since) == ("wrap_up", 100)
    clock.advance(9.9)
    assert op.state == "wrap_up"
    clock.advance(0.1)
    assert (op.state, op.idle_since, op.since) == ("available", 110, 110)
    assert seen.seen == [("wrap_up", "hang_up"), ("available", "wrap_up_done")]
    assert clock.getDelayedCalls() == []


def test_wrap_up_length_is_per_group() -> None:
    clock = Clock()
    op, _ = operator_in("available", clock)
    for event, arg in [("reserve", NEVER), ("offer", None), ("answer", None), ("hang_up", None)]:
        op.fire(event, arg)
    clock.advance(5)
    assert op.state == "available"


@pytest.mark.parametrize(("event", "arg", "after"), [
    ("wrap_up_done", None, "available"),
    ("break", "lunch", "break"),
    ("logout", None, "logged_out"),
])  # fmt: skip
def test_leaving_wrap_up_early_cancels_its_timer(event: str, arg: Any, after: str) -> None:
    clock = Clock()
    op, seen = operator_in("wrap_up", clock)
    op.fire(event, arg)
    assert clock.getDelayedCalls() == []
    clock.advance(60)
    assert op.state == after and seen.seen == [(after, event)]


def test_idle_since_is_when_the_operator_last_became_free_for_work() -> None:
    clock = Clock()
    clock.advance(5)
    op, _ = operator_in("available", clock)
    assert op.idle_since == 5
    clock.advance(10)
    op.fire("reserve", SALES)
    op.fire("release")  # a reservation given back: still idle since 5
    ring_unanswered(op, NEVER)  # nor does an offer it did not take reset it
    assert (op.idle_since, op.since) == (5, 15)
    op.fire("break", "lunch")
    clock.advance(1800)
    op.fire("resume")
    assert op.idle_since == 1815
