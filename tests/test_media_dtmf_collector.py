"""One leg's digits from three sources: cross-source duplicates dropped, type-ahead kept."""

from __future__ import annotations

from media.dtmf import DigitCollector


def _drain(collector: DigitCollector) -> str:
    out = ""
    while (digit := collector.take()) is not None:
        out += digit
    return out


def test_same_press_from_two_sources_counts_once() -> None:
    collector = DigitCollector()
    assert collector.push("5", "rfc4733", 10.0)
    assert not collector.push("5", "inband", 10.06)
    assert not collector.push("5", "info", 10.09)
    assert _drain(collector) == "5"


def test_same_source_twice_is_two_presses() -> None:
    collector = DigitCollector()
    assert collector.push("1", "rfc4733", 1.0)
    assert collector.push("1", "rfc4733", 1.05)
    assert _drain(collector) == "11"


def test_other_source_after_the_window_or_other_key_counts() -> None:
    collector = DigitCollector()
    assert collector.push("1", "rfc4733", 1.0)
    assert collector.push("1", "inband", 1.2)
    assert collector.push("2", "inband", 1.25)
    assert _drain(collector) == "112"


def test_fifo_and_clear() -> None:
    collector = DigitCollector()
    for i, digit in enumerate("12#"):
        collector.push(digit, "info", float(i))
    assert collector.take() == "1"
    collector.clear()
    assert collector.take() is None
