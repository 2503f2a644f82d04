"""Selection strategies and tiers: worked examples, then properties over any group of operators."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.acm.model import STRATEGIES, Group, Tier
from engine.acm.strategies import Candidate, select


def op(name: str, level: int = 1, idle_since: float = 0.0, calls: int = 0,
       state: str = "available") -> Candidate:  # fmt: skip
    return Candidate(name, level, state, idle_since, calls)


def names(rounds: list[tuple[Candidate, ...]]) -> list[list[str]]:
    return [[c.name for c in r] for r in rounds]


TEAM = [
    op("anna", level=3, idle_since=50, calls=9),
    op("bert", level=1, idle_since=10, calls=2),
    op("carla", level=3, idle_since=20, calls=4),
    op("dirk", level=2, idle_since=5, calls=2),
    op("eva", level=3, idle_since=1, calls=0, state="on_call"),
    op("fons", level=2, idle_since=0, calls=0, state="break"),
]


def test_level_then_longest_idle() -> None:
    assert names(select(Group("g"), 0, TEAM)) == [["carla"], ["anna"], ["dirk"], ["bert"]]


def test_fewest_calls_then_longest_idle() -> None:
    group = Group("g", "fewest-calls")
    assert names(select(group, 0, TEAM)) == [["dirk"], ["bert"], ["carla"], ["anna"]]


def test_ring_all_rings_each_level_together_best_first() -> None:
    group = Group("g", "ring-all")
    assert names(select(group, 0, TEAM)) == [["carla", "anna"], ["dirk"], ["bert"]]


@pytest.mark.parametrize(("cursor", "first"), [
    (None, "anna"), ("anna", "bert"), ("bert", "carla"), ("dirk", "anna"),
    ("eva", "anna"),  # the last offered is no longer available: the ring goes on after it
    ("c", "carla"),
])  # fmt: skip
def test_round_robin_starts_after_the_cursor(cursor: str | None, first: str) -> None:
    rounds = names(select(Group("g", "round-robin"), 0, TEAM, cursor))
    ring = ["anna", "bert", "carla", "dirk"]
    start = ring.index(first)
    assert rounds == [[n] for n in ring[start:] + ring[:start]]


def test_tiers_widen_to_lower_levels_as_the_caller_waits() -> None:
    group = Group("g", tiers=(Tier(0, 3), Tier(30, 2), Tier(60, 1)))
    assert names(select(group, 0, TEAM)) == [["carla"], ["anna"]]
    assert names(select(group, 29.9, TEAM)) == [["carla"], ["anna"]]
    assert names(select(group, 30, TEAM)) == [["carla"], ["anna"], ["dirk"]]
    assert names(select(group, 600, TEAM)) == [["carla"], ["anna"], ["dirk"], ["bert"]]


def test_nobody_available_at_the_level_means_no_rounds() -> None:
    group = Group("g", tiers=(Tier(0, 3), Tier(30, 1)))
    assert select(group, 10, [op("bert", level=1), op("eva", level=3, state="ringing")]) == []


def test_a_tier_nobody_logged_in_reaches_does_not_hold_callers() -> None:
    group = Group("g", tiers=(Tier(0, 9), Tier(60, 1)))
    team = [op("bert", level=1), op("dirk", level=2), op("nine", level=9, state="logged_out")]
    assert names(select(group, 0, team)) == [["dirk"]]  # the best at work, not the absent 9
    team[2] = op("nine", level=9, state="break")  # present: callers wait for her
    assert select(group, 0, team) == []


# -- properties ------------------------------------------------------------------------

STATES = ("logged_out", "available", "reserved", "ringing", "on_call", "wrap_up", "break")
candidates = st.lists(
    st.builds(
        Candidate,
        name=st.text("abcdefgh", min_size=1, max_size=4),
        level=st.integers(1, 9),
        state=st.sampled_from(STATES),
        idle_since=st.floats(0, 1e6),
        calls_handled=st.integers(0, 500),
    ),
    max_size=12,
    unique_by=lambda c: c.name,
)


@st.composite
def tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    """Tiers as the configuration stores them: from 0 s, later and lower each."""
    levels = sorted(draw(st.sets(st.integers(1, 9), max_size=4)), reverse=True)
    afters = sorted(draw(st.sets(st.floats(1, 600), min_size=len(levels), max_size=len(levels))))
    return tuple(Tier(a, lv) for a, lv in zip([0.0, *afters[1:]], levels, strict=False))


groups = st.builds(Group, name=st.just("g"), strategy=st.sampled_from(STRATEGIES), tiers=tiers())


@given(groups, st.floats(0, 1000), candidates, st.none() | st.text("abcdefgh", max_size=4))
def test_exactly_the_eligible_are_offered_each_once(
    group: Group, waited: float, team: list[Candidate], cursor: str | None
) -> None:
    rounds = select(group, waited, team, cursor)
    offered = [c for r in rounds for c in r]
    present = [c.level for c in team if c.state != "logged_out"]
    floor = min(group.min_level(waited), max(present, default=9))
    eligible = {c for c in team if c.state == "available" and c.level >= floor}
    assert len(offered) == len(set(offered)) and set(offered) == eligible
    assert all(rounds)
    if group.strategy != "ring-all":
        assert all(len(r) == 1 for r in rounds)


@given(groups, st.floats(0, 1000), st.floats(0, 1000), candidates)
def test_waiting_longer_never_narrows_the_choice(
    group: Group, a: float, b: float, team: list[Candidate]
) -> None:
    early, late = sorted((a, b))
    before = {c for r in select(group, early, team) for c in r}
    assert before <= {c for r in select(group, late, team) for c in r}


@given(candidates)
def test_level_first_orders_by_level_then_idle(team: list[Candidate]) -> None:
    order = [c for (c,) in select(Group("g"), 0, team)]
    keys = [(-c.level, c.idle_since) for c in order]
    assert keys == sorted(keys)


@given(candidates)
def test_ring_all_rounds_are_whole_levels_best_first(team: list[Candidate]) -> None:
    rounds = select(Group("g", "ring-all"), 0, team)
    levels = [{c.level for c in r} for r in rounds]
    assert all(len(lv) == 1 for lv in levels)
    flat = [lv.pop() for lv in levels]
    assert flat == sorted(flat, reverse=True) and len(set(flat)) == len(flat)


@given(candidates)
def test_round_robin_gives_everyone_a_turn(team: list[Candidate]) -> None:
    """Offering the first each time and moving the cursor to them visits every operator once."""
    group = Group("g", "round-robin")
    available = [replace(c, state="available") for c in team]
    cursor, turns = None, []
    for _ in available:
        (first,) = select(group, 0, available, cursor)[0]
        turns.append(first.name)
        cursor = first.name
    assert sorted(turns) == sorted(c.name for c in available)
