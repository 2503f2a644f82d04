"""engine/failures.py: the sliding window of failures per source, bounded in memory and work."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.task import Clock

from engine.failures import FailureWindow


class CountingDict(OrderedDict[Any, Any]):
    """An OrderedDict that counts the entries anyone walks over (a scan is visible here)."""

    visited = 0

    def __iter__(self) -> Iterator[Any]:
        for key in super().__iter__():
            CountingDict.visited += 1
            yield key

    def items(self) -> Any:
        return ((key, self[key]) for key in self)

    def values(self) -> Any:
        return (self[key] for key in self)

    def keys(self) -> Any:
        return iter(self)


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(1_000_000)
    return c


def test_limit_failures_block_until_the_oldest_ages_out(clock: Clock) -> None:
    w = FailureWindow(clock, limit=3, window=60)
    for _ in range(2):
        w.failed("a")
        clock.advance(10)
    assert w.blocked("a") is None
    assert w.blocked("a", pending=1) == 40  # an attempt under way counts as a failure
    w.failed("a")
    assert w.blocked("a") == 40 and w.blocked("b") is None
    clock.advance(40)
    assert w.blocked("a") is None


def test_failures_past_the_limit_keep_the_exact_answer(clock: Clock) -> None:
    """Only the newest ``limit`` times are kept; they give the same answers as all of them."""
    w = FailureWindow(clock, limit=2, window=60)
    for _ in range(5):
        w.failed("a")
        clock.advance(10)  # failures at 0, 10, 20, 30, 40; now 50
    assert w.blocked("a") == 40  # until the one at 30 ages out, leaving one
    clock.advance(40)
    assert w.blocked("a") is None
    assert w.blocked("a", pending=1) == 10


def test_keys_may_be_tuples(clock: Clock) -> None:
    w = FailureWindow(clock, limit=1)
    w.failed(("192.0.2.1", "anna"))
    assert w.blocked(("192.0.2.1", "anna")) is not None
    assert w.blocked(("192.0.2.1", "bert")) is None


def test_sources_whose_failures_aged_out_are_forgotten_first(clock: Clock) -> None:
    w = FailureWindow(clock, limit=2, window=60, tracked=3)
    w.failed("old")
    clock.advance(61)
    w.failed("a")
    w.failed("a")
    w.failed("b")
    w.failed("c")  # full: "old" goes, not the recent ones
    assert w.size == 3
    assert w.blocked("a") is not None


def test_a_full_table_of_recent_sources_forgets_the_one_that_failed_longest_ago(
    clock: Clock,
) -> None:
    w = FailureWindow(clock, limit=2, window=60, tracked=3)
    for source in ("a", "b", "c"):
        w.failed(source)
        w.failed(source)
        clock.advance(1)
    w.failed("a")  # "a" failed last now: "b" is the oldest
    w.failed("d")
    assert w.size == 3
    assert w.blocked("b") is None
    assert w.blocked("a") is not None and w.blocked("c") is not None


def test_a_flood_of_distinct_sources_is_bounded_in_memory_and_work(clock: Clock) -> None:
    """40,000 failures from as many forged sources, all within the window."""
    w = FailureWindow(clock, limit=10, window=60, tracked=1000)
    w._failures = CountingDict()
    CountingDict.visited = 0
    for i in range(40_000):
        w.failed(f"198.51.{i // 256}.{i % 256}")
        assert w.blocked("203.0.113.1") is None
        if i % 1000 == 0:
            clock.advance(0.001)
    assert w.size == 1000
    # One look at the oldest entry per failure at most: no scan of the table.
    assert CountingDict.visited <= 40_000


def test_aged_out_sources_are_dropped_amortised_as_new_ones_fail(clock: Clock) -> None:
    w = FailureWindow(clock, limit=3, window=60, tracked=10_000)
    w._failures = CountingDict()
    for i in range(5000):
        w.failed(f"a{i}")
    clock.advance(61)
    CountingDict.visited = 0
    for i in range(5000):
        w.failed(f"b{i}")
    assert w.size == 5000  # every "a" went, each looked at once
    assert CountingDict.visited <= 2 * 5000


def test_tracked_must_be_positive(clock: Clock) -> None:
    with pytest.raises(ValueError, match="tracked"):
        FailureWindow(clock, tracked=0)
