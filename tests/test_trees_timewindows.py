"""The ``time`` criterion: parsing, wrap-around, midnight, 24:00, error offsets."""

from __future__ import annotations

import pytest

from routing_trees.timewindows import (
    MINUTES_PER_DAY,
    MINUTES_PER_WEEK,
    TimeWindowError,
    format_minute,
    parse_windows,
)

MON, TUE, WED, THU, FRI, SAT, SUN = (d * MINUTES_PER_DAY for d in range(7))


def hm(day: int, hour: int, minute: int = 0) -> int:
    return day + hour * 60 + minute


def test_spec_example() -> None:
    w = parse_windows("mon-fri 08:00-18:00, sat 09:00-12:00")
    assert hm(MON, 8) in w
    assert hm(FRI, 17, 59) in w
    assert hm(FRI, 18) not in w  # the end is exclusive
    assert hm(MON, 7, 59) not in w
    assert hm(SAT, 9) in w
    assert hm(SAT, 12) not in w
    assert hm(SUN, 10) not in w
    assert sum(w.table) == 5 * 600 + 180


def test_window_crossing_midnight() -> None:
    w = parse_windows("fri 22:00-06:00")
    assert w.intervals == ((hm(FRI, 22), hm(SAT, 6)),)
    assert hm(FRI, 21, 59) not in w
    assert hm(FRI, 23, 30) in w
    assert hm(SAT, 5, 59) in w
    assert hm(SAT, 6) not in w


def test_sunday_night_wraps_into_monday() -> None:
    w = parse_windows("sun 22:00-06:00")
    assert w.intervals == ((0, hm(MON, 6)), (hm(SUN, 22), MINUTES_PER_WEEK))
    assert hm(SUN, 23) in w
    assert hm(MON, 1) in w
    assert hm(MON, 6) not in w


def test_weekday_range_wrapping_around_the_week() -> None:
    w = parse_windows("fri-mon 10:00-11:00")
    days = {d // MINUTES_PER_DAY for d in range(MINUTES_PER_WEEK) if d in w}
    assert days == {4, 5, 6, 0}


def test_24_00_as_an_end() -> None:
    w = parse_windows("sat 18:00-24:00")
    assert hm(SAT, 23, 59) in w
    assert hm(SUN, 0) not in w
    assert parse_windows("mon 00:00-24:00") == parse_windows("mon")


def test_day_alone_and_time_alone_extensions() -> None:
    assert sum(parse_windows("sun").table) == MINUTES_PER_DAY
    assert sum(parse_windows("sat-sun").table) == 2 * MINUTES_PER_DAY
    every_night = parse_windows("22:00-06:00")
    assert sum(every_night.table) == 7 * 8 * 60
    assert hm(WED, 3) in every_night


def test_overlapping_windows_merge_and_case_and_spaces_are_free() -> None:
    w = parse_windows("MON 08:00 - 12:00 ,mon 11:00-13:00,  Tue 9:00-10:00")
    assert w.intervals == ((hm(MON, 8), hm(MON, 13)), (hm(TUE, 9), hm(TUE, 10)))


def test_within() -> None:
    office = parse_windows("mon-fri 08:00-18:00")
    assert parse_windows("tue 09:00-10:00").within(office)
    assert not parse_windows("sat 09:00-10:00").within(office)
    assert not parse_windows("mon 07:00-09:00").within(office)


def test_format_minute() -> None:
    assert format_minute(hm(FRI, 10, 5)) == "Fri 10:05"


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("mon-fri 08:00-18:60", 17, "minutes must be 00-59, not 60"),
        ("mon 25:00-26:00", 4, "hours must be 00-23 (or 24:00), not 25"),
        ("thur 10:00-11:00", 0, "unknown weekday 'thur' (did you mean 'thu'?)"),
        ("xyz", 0, "unknown weekday 'xyz' (use mon, tue, wed, thu, fri, sat, sun)"),
        ("mon 10:00 11:00", 10, "expected '-' between the start and end times"),
        ("mon 10:00-11:00 x", 16, "unexpected 'x': separate windows with commas"),
        ("mon 10:00-11:00,", 16, "empty window: expected a weekday (mon ... sun) or HH:MM-HH:MM"),
        ("mon 24:00-10:00", 4, "24:00 can only end a window"),
        (
            "mon 10:00-10:00",
            4,
            "the window starts and ends at the same time: write 00:00-24:00 for a whole day",
        ),
        ("mon 10:00-1100", 10, "expected a time HH:MM, not '1100'"),
        ("mon x", 4, "expected a time range HH:MM-HH:MM, not 'x'"),
        ("10:00", 5, "expected '-' between the start and end times"),
    ],
)
def test_syntax_errors_have_offsets(text: str, offset: int, message: str) -> None:
    with pytest.raises(TimeWindowError) as caught:
        parse_windows(text)
    assert (caught.value.offset, caught.value.message) == (offset, message)
