"""B2BUA mode: the flood limits come before routing, for known and unknown numbers alike."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from b2bkit import Harness
from engine.floods import FloodGuard, FloodSettings, RateLimit
from routing_trees.compile import CompiledTree

NUMBER = "+3225551236"
TREE = f"""\
version: 1
customer: acme
numbers: ["{NUMBER}"]
timezone: Europe/Brussels
routes:
  - name: desk
    do: {{forward: "+3225550020", timeout: 10}}
"""


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    (tmp_path / "acme.yaml").write_text(TREE)
    return Harness(tmp_path)


def guarded(h: Harness, **settings: Any) -> FloodGuard:
    guard = FloodGuard(h.clock, FloodSettings(**settings))
    h.b2bua.floods = guard
    return guard


def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The called number of every tree evaluation from now on."""
    seen: list[str] = []
    evaluate = CompiledTree.evaluate

    def counting(tree: CompiledTree, facts: Any) -> Any:
        seen.append(facts.called)
        return evaluate(tree, facts)

    monkeypatch.setattr(CompiledTree, "evaluate", counting)
    return seen


@pytest.mark.parametrize("response", [503, 486])
def test_unknown_numbers_from_one_source_are_limited(harness: Harness, response: int) -> None:
    guard = guarded(harness, per_source=RateLimit(1.0, 3), response=response)
    for i in range(10):
        harness.caller_sends(harness.invite(called=f"+32255599{i:02d}", branch=f"z9hG4bK-u{i}"))
    assert harness.statuses_to_caller() == [404] * 3 + [response] * 7
    assert (guard.counters.admitted, guard.counters.refused_source) == (3, 7)
    assert not guard.numbers  # numbers no tree serves take no per-number bucket
    harness.clock.advance(1.0)  # one token back
    harness.statuses_to_caller()  # the refusals' retransmissions (no ACK here)
    harness.caller_sends(harness.invite(called="+3225559999", branch="z9hG4bK-u99"))
    assert harness.statuses_to_caller() == [404]


def test_a_call_refused_by_its_source_is_never_evaluated(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = guarded(harness, per_source=RateLimit(1.0, 1))
    seen = evaluations(monkeypatch)
    harness.caller_sends(harness.invite(called=NUMBER, branch="z9hG4bK-k1"))
    assert seen == [NUMBER] and harness.statuses_to_caller()[0] == 100  # admitted: placed
    harness.caller_sends(harness.invite(called=NUMBER, branch="z9hG4bK-k2"))
    assert harness.statuses_to_caller() == [503]
    assert seen == [NUMBER] and guard.counters.refused_source == 1
    assert harness.b2bua.calls_started == 1


def test_a_call_refused_by_its_number_is_never_evaluated(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard = guarded(harness, per_number=RateLimit(1.0, 2))
    seen = evaluations(monkeypatch)
    for i in range(3):
        harness.caller_sends(harness.invite(called=NUMBER, branch=f"z9hG4bK-n{i}"))
    assert seen == [NUMBER] * 2
    assert harness.statuses_to_caller().count(503) == 1
    assert (guard.counters.admitted, guard.counters.refused_number) == (2, 1)
    assert harness.b2bua.calls_started == 2


def test_the_customer_override_applies_before_evaluation(harness: Harness) -> None:
    guard = FloodGuard(harness.clock, FloodSettings(per_number=RateLimit(1.0, 1)),
                       {"acme": RateLimit(1.0, 3)})  # fmt: skip
    harness.b2bua.floods = guard
    for i in range(4):
        harness.caller_sends(harness.invite(called=NUMBER, branch=f"z9hG4bK-o{i}"))
    assert guard.counters.admitted == 3 and guard.counters.refused_number == 1
    assert harness.b2bua.calls_started == 3


def test_service_numbers_take_their_own_bucket(harness: Harness) -> None:
    """The DRS number (no customer) and an ACM feature number (its customer's override)."""
    drs, feature = "+3278150000", "+3278150001"
    harness.ctx.drs = SimpleNamespace(service_number=drs)  # type: ignore[assignment]
    harness.ctx.acm = SimpleNamespace(phone=SimpleNamespace(numbers={feature: "acme"}))  # type: ignore[assignment]
    guard = FloodGuard(harness.clock, FloodSettings(per_number=RateLimit(1.0, 1)),
                       {"acme": RateLimit(1.0, 2)})  # fmt: skip
    harness.b2bua.floods = guard
    for number, customer, burst in ((drs, None, 1), (feature, "acme", 2)):
        for _ in range(burst):  # other callers took the burst
            assert guard.admit(number, customer, "192.0.2.99") is None
        harness.caller_sends(harness.invite(called=number, branch=f"z9hG4bK-{number}"))
        assert harness.statuses_to_caller() == [503]
    assert guard.counters.refused_number == 2 and harness.b2bua.calls_started == 0
