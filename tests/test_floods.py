"""Flood limits: token buckets per called number and per source, on task.Clock."""

from __future__ import annotations

import logging
import time

import pytest
from twisted.internet.task import Clock

from engine.floods import NUMBER, SOURCE, FloodGuard, FloodRefusal, FloodSettings, RateLimit
from sipkit import request

NUM = "+3225551234"
SRC = "192.0.2.10"


def guard(**settings: object) -> tuple[FloodGuard, Clock]:
    clock = Clock()
    clock.advance(1_780_000_000)  # epoch-sized times, as in production
    per_customer = settings.pop("per_customer", {})
    return FloodGuard(clock, FloodSettings(**settings), per_customer), clock  # type: ignore[arg-type]


def test_a_steady_rate_at_the_limit_is_always_admitted() -> None:
    floods, clock = guard()
    for _ in range(20 * 60):  # a minute at exactly 20 calls/s
        assert floods.admit(NUM, None, SRC) is None
        clock.advance(0.05)
    assert floods.counters.admitted == 1200
    assert floods.counters.refused_number == 0


def test_a_rate_above_the_limit_is_cut_to_the_limit() -> None:
    floods, clock = guard()
    admitted = 0
    for _ in range(30 * 20):  # 20 s at 30 calls/s
        admitted += floods.admit(NUM, None, SRC) is None
        clock.advance(1 / 30)
    # the burst of 40, then 20 per second
    assert 40 + 20 * 20 - 2 <= admitted <= 40 + 20 * 20 + 1


def test_burst_then_refusal_then_refill() -> None:
    floods, clock = guard()
    assert [floods.admit(NUM, None, SRC) for _ in range(40)] == [None] * 40
    refusal = floods.admit(NUM, None, SRC)
    assert refusal == FloodRefusal(NUMBER, 503, "Call Rate Limited", 5)
    assert refusal.headers == (("retry-after", "5"),)
    assert floods.counters.refused_number == 1
    assert floods.tokens(NUMBER, NUM) < 1
    clock.advance(0.049)
    assert floods.admit(NUM, None, SRC) is not None
    clock.advance(0.002)  # 1/20 s after the bucket ran dry: one token
    assert floods.admit(NUM, None, SRC) is None
    assert floods.admit(NUM, None, SRC) is not None
    clock.advance(2.0)  # 40 tokens at 20/s: full again
    assert floods.tokens(NUMBER, NUM) == pytest.approx(40, abs=0.1)
    assert [floods.admit(NUM, None, SRC) for _ in range(40)] == [None] * 40
    assert floods.admit(NUM, None, SRC) is not None
    assert floods.admit("+3225551235", None, SRC) is None  # another number is untouched


def test_a_refused_call_takes_no_token() -> None:
    floods, _ = guard(per_number=RateLimit(1, 2), per_source=RateLimit(1, 3))
    assert floods.admit(NUM, None, SRC) is None
    assert floods.admit(NUM, None, SRC) is None
    assert floods.admit(NUM, None, SRC).kind == NUMBER  # type: ignore[union-attr]
    # the number's refusal did not spend the source's third token
    assert floods.admit("+3225559999", None, SRC) is None
    refusal = floods.admit("+3225558888", None, SRC)
    assert refusal is not None and refusal.kind == SOURCE
    # ... nor did the source's refusal spend that number's token
    assert floods.tokens(NUMBER, "+3225558888") == 2
    assert floods.counters.refused_source == 1 and floods.counters.refused_number == 1


def test_per_source_limit_across_numbers() -> None:
    floods, _ = guard()
    results = [floods.admit(f"+32255{n:05d}", None, SRC) for n in range(1001)]
    assert results[:1000] == [None] * 1000
    assert results[1000] is not None and results[1000].kind == SOURCE
    assert floods.admit(f"+32255{2000:05d}", None, "192.0.2.11") is None  # another source


def test_no_called_number_checks_the_source_only() -> None:
    floods, _ = guard(per_source=RateLimit(1, 2))
    assert floods.admit(None, None, SRC) is None
    assert floods.admit(None, "acme", SRC) is None
    assert floods.admit(None, None, SRC) is not None
    assert len(floods.numbers) == 0


def test_per_customer_override() -> None:
    floods, clock = guard(per_customer={"acme": RateLimit(1.0, 5)})
    acme, other = "+3225551234", "+3222001000"
    assert [floods.admit(acme, "acme", SRC) is None for _ in range(6)] == [True] * 5 + [False]
    assert [floods.admit(other, "globex", SRC) is None for _ in range(40)] == [True] * 40
    assert floods.admit(other, None, SRC) is not None
    clock.advance(1.0)
    assert floods.admit(acme, "acme", SRC) is None  # 1/s for acme
    assert floods.admit(acme, "acme", SRC) is not None
    assert floods.tokens(NUMBER, acme, "acme") < 1


def test_486_and_no_retry_after() -> None:
    floods, _ = guard(per_number=RateLimit(1, 1), response=486, retry_after=0)
    assert floods.admit(NUM, None, SRC) is None
    refusal = floods.admit(NUM, None, SRC)
    assert refusal is not None and (refusal.status, refusal.headers) == (486, ())
    response = refusal.response(request("INVITE"), "tag-1")
    assert (response.status, response.reason) == (486, "Call Rate Limited")
    assert response.get("retry-after") is None
    assert response.get("to") == "<sip:+3225551234@127.0.0.1:5060>;tag=tag-1"


def test_the_503_carries_retry_after() -> None:
    floods, _ = guard(per_number=RateLimit(1, 1), retry_after=7)
    floods.admit(NUM, None, SRC)
    refusal = floods.admit(NUM, None, SRC)
    assert refusal is not None
    response = refusal.response(request("INVITE"), "tag-1")
    assert (response.status, response.get("retry-after")) == (503, "7")
    assert b"\r\nRetry-After: 7\r\n" in response.to_bytes()


def test_refusals_are_logged_once_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "engine.floods")
    floods, clock = guard(per_number=RateLimit(1, 1), per_source=RateLimit(1, 1))
    floods.admit(NUM, None, SRC)
    for _ in range(50):
        floods.admit(NUM, None, "192.0.2.99")  # number refusals
        floods.admit("+3222001000", None, SRC)  # source refusals
    assert caplog.messages == [
        "flood: calls to +3225551234 exceed 1 calls/s (burst 1); refused with 503",
        "flood: INVITEs from 192.0.2.10 exceed 1 calls/s (burst 1); refused with 503",
    ]
    clock.advance(10)
    for n in range(3):  # the bucket is full again: one admitted, then refusals
        floods.admit(NUM, None, f"192.0.2.{100 + n}")
    assert caplog.messages[-1] == ("flood: calls to +3225551234 exceed 1 calls/s (burst 1); "
                                   "refused with 503 (49 more like this suppressed)")  # fmt: skip
    assert floods.counters.refused_number == 52 and floods.counters.refused_source == 50


def test_memory_is_bounded_under_a_million_sources_and_a_flooder_stays_tracked() -> None:
    floods, clock = guard(per_number=RateLimit(20, 40), per_source=RateLimit(1, 2))
    flooder = "198.51.100.1"
    start = time.perf_counter()
    for n in range(1_000_000):
        floods.admit(None, None, f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
        if n % 1000 == 0:
            floods.admit(None, None, flooder)
            clock.advance(0.001)
    elapsed = time.perf_counter() - start
    assert len(floods.sources) == floods.max_sources == 100_000
    assert floods.counters.evicted_sources == 1_000_000 + 1 - 100_000
    # the flooder is used all along, so it is never the oldest: it stays limited
    assert flooder in floods.sources
    assert floods.counters.refused_source >= 990
    assert elapsed < 15, elapsed


def test_memory_is_bounded_under_many_numbers() -> None:
    clock = Clock()
    floods = FloodGuard(clock, max_numbers=1000, max_sources=10)
    for n in range(5000):
        floods.admit(f"+3225{n:06d}", None, f"192.0.2.{n % 50}")
    assert len(floods.numbers) == 1000 and len(floods.sources) == 10
    assert floods.counters.evicted_numbers == 4000
    assert next(iter(floods.numbers)) == "+3225004000"  # the oldest left is the 4001st


def test_a_clock_set_back_does_not_refuse_calls_for_the_length_of_the_step() -> None:
    floods, clock = guard(per_number=RateLimit(1, 2), per_source=RateLimit(1, 2))
    assert floods.admit(NUM, None, SRC) is None
    assert floods.admit(NUM, None, SRC) is None
    assert floods.admit(NUM, None, SRC) is not None  # empty
    clock.advance(-3600)  # NTP steps the wall clock back an hour
    assert floods.admit(NUM, None, SRC) is None  # afresh, not refused for an hour
    assert floods.admit(NUM, None, SRC) is None
    assert floods.admit(NUM, None, SRC) is not None


def test_configure_keeps_the_buckets() -> None:
    floods, _ = guard()
    for _ in range(40):
        floods.admit(NUM, None, SRC)
    floods.configure(FloodSettings(per_number=RateLimit(20, 41)), {})
    assert floods.admit(NUM, None, SRC) is None  # one more token of room, not a new bucket
    assert floods.admit(NUM, None, SRC) is not None


def test_admit_costs_microseconds() -> None:
    """A loose bound for CI; bench/floods.py prints the real figures."""
    floods, clock = guard()
    numbers = [f"+32255{n:05d}" for n in range(1000)]
    sources = [f"192.0.2.{n}" for n in range(200)]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for i in range(20_000):
            floods.admit(numbers[i % 1000], None, sources[i % 200])
        best = min(best, (time.perf_counter() - start) / 20_000)
        clock.advance(60)
    assert best < 10e-6, f"{best * 1e6:.2f} µs per admit"
