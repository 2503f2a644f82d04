"""Erlang B and C against exact rational arithmetic, textbook figures, and large centres."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.acm.erlang import agents_needed, erlang_b, erlang_c, service_level


def exact_c(traffic: Fraction, agents: int) -> Fraction:
    """The textbook formula, term by term, in exact fractions."""
    terms = [traffic**k / math.factorial(k) for k in range(agents)]
    top = traffic**agents / math.factorial(agents) * agents / (agents - traffic)
    return top / (sum(terms) + top)


def exact_b(traffic: Fraction, agents: int) -> Fraction:
    terms = [traffic**k / math.factorial(k) for k in range(agents + 1)]
    return terms[-1] / sum(terms)


@pytest.mark.parametrize(("traffic", "agents"), [
    (Fraction(1, 2), 1), (Fraction(5), 6), (Fraction(10), 11), (Fraction(10), 14),
    (Fraction(37, 3), 20), (Fraction(180), 200),
])  # fmt: skip
def test_against_exact_fractions(traffic: Fraction, agents: int) -> None:
    assert erlang_b(float(traffic), agents) == pytest.approx(float(exact_b(traffic, agents)),
                                                             rel=1e-12)  # fmt: skip
    assert erlang_c(float(traffic), agents) == pytest.approx(float(exact_c(traffic, agents)),
                                                             rel=1e-12)  # fmt: skip


def test_textbook_example() -> None:
    """100 calls in 30 minutes of 3 minutes each, 80 % answered within 20 s: 14 operators."""
    assert erlang_c(10, 11) == pytest.approx(0.6821, abs=5e-5)
    assert erlang_c(10, 14) == pytest.approx(0.1741, abs=5e-5)
    assert service_level(10, 13, 180, 20) == pytest.approx(0.7956, abs=5e-5)
    assert service_level(10, 14, 180, 20) == pytest.approx(0.8884, abs=5e-5)
    assert agents_needed(200, 180, 0.8, 20) == 14


def test_a_large_centre_matches_exact_integers_where_factorials_overflow_floats() -> None:
    """900 erlangs on 1,000 operators: A**N / N! is far beyond a double; the recursion is not."""
    assert erlang_c(900, 1000) == pytest.approx(float(exact_c(Fraction(900), 1000)), rel=1e-9)


def test_agents_needed_for_a_very_large_centre_is_near_square_root_staffing() -> None:
    traffic = 100_000 * 180 / 3600  # 5,000 erlangs
    needed = agents_needed(100_000, 180, 0.8, 20)
    assert service_level(traffic, needed, 180, 20) >= 0.8 > service_level(traffic, needed - 1,
                                                                           180, 20)  # fmt: skip
    assert traffic < needed < traffic + 3 * math.sqrt(traffic)


def test_edges() -> None:
    assert erlang_c(10, 10) == 1.0 and erlang_c(10, 3) == 1.0  # the queue only grows
    assert service_level(10, 9, 180, 20) == 0.0
    assert erlang_c(0, 5) == 0.0 and service_level(0, 0, 180, 20) == 1.0
    assert agents_needed(0, 180, 0.8, 20) == 0
    assert erlang_b(3, 0) == 1.0
    # A target met only far beyond the first guess (the search widens).
    assert service_level(0.01, agents_needed(0.1, 360, 0.999999, 0), 360, 0) >= 0.999999
    for bad in [(-1.0, 3), (math.inf, 3), (1.0, -1)]:
        with pytest.raises(ValueError):
            erlang_c(*bad)
    for target in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="target_sl"):
            agents_needed(100, 180, target, 20)
    with pytest.raises(ValueError):
        service_level(1, 2, 0, 20)


@given(st.floats(0.01, 500), st.integers(1, 600), st.floats(1, 600), st.floats(0, 120))
def test_more_operators_never_make_waiting_likelier(
    traffic: float, agents: int, aht: float, target: float
) -> None:
    c, c_more = erlang_c(traffic, agents), erlang_c(traffic, agents + 1)
    assert 0 <= c_more <= c <= 1
    assert erlang_b(traffic, agents) <= c + 1e-12  # queued calls wait at least as often
    sl = service_level(traffic, agents, aht, target)
    assert 0 <= sl <= service_level(traffic, agents + 1, aht, target) + 1e-12 <= 1 + 1e-12


@given(st.floats(1, 5000), st.floats(10, 900), st.floats(0.05, 0.99), st.floats(0, 300))
def test_agents_needed_is_the_least_that_meets_the_target(
    calls: float, aht: float, target_sl: float, target_s: float
) -> None:
    traffic = calls * aht / 3600
    n = agents_needed(calls, aht, target_sl, target_s)
    assert service_level(traffic, n, aht, target_s) >= target_sl
    assert service_level(traffic, n - 1, aht, target_s) < target_sl
