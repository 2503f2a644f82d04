"""The ``time`` criterion: weekly windows such as ``mon-fri 08:00-18:00, sat 09:00-12:00``.

Grammar (case-insensitive, spaces free around ``-`` and ``,``)::

    windows := window ("," window)*
    window  := days [HH:MM "-" HH:MM]  |  HH:MM "-" HH:MM
    days    := DAY | DAY "-" DAY          DAY: mon tue wed thu fri sat sun

- A day range may wrap around the week: ``fri-mon`` is Friday to Monday.
- Times are ``HH:MM`` (``H:MM`` too); the end is exclusive and may be
  ``24:00``. An end earlier than the start crosses midnight: ``fri
  22:00-06:00`` runs from Friday 22:00 into Saturday 06:00 (and ``sun
  22:00-06:00`` into Monday). A window that starts and ends at the same time
  is refused as ambiguous: write ``00:00-24:00`` for a whole day.
- Extensions: a day or range alone (``sun``, ``sat-sun``) is the whole day;
  a time range alone (``22:00-06:00``) applies to every day.

The result is a set of minutes of the week (Monday 00:00 is minute 0), held
both as merged intervals (for comparison and compiling) and as a 10,080-byte
table, so that checking one instant is a single index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .source import did_you_mean

__all__ = [
    "DAYS",
    "MINUTES_PER_DAY",
    "MINUTES_PER_WEEK",
    "TimeWindowError",
    "TimeWindows",
    "format_minute",
    "parse_windows",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_TIME = re.compile(r"(\d{1,2}):(\d\d)(?!\d)")
_WORD = re.compile(r"[^\s,]+")
_LETTERS = re.compile(r"[A-Za-z]+")


class TimeWindowError(ValueError):
    """A syntax error at ``offset`` (0-based) inside the criterion's text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class TimeWindows:
    """A parsed ``time`` criterion: which minutes of the week it holds in."""

    spec: str = field(compare=False)
    intervals: tuple[tuple[int, int], ...]
    """Sorted, merged, half-open ``[start, end)`` minutes of the week."""
    table: bytes = field(compare=False, repr=False)
    """``table[minute_of_week]`` is 1 inside a window, 0 outside."""
    bits: int = field(compare=False, repr=False)
    """The same set as an integer: bit ``m`` set for minute of the week ``m``."""

    def __contains__(self, minute_of_week: int) -> bool:
        return self.table[minute_of_week] == 1

    def within(self, other: TimeWindows) -> bool:
        """True when every minute of these windows is also in ``other``."""
        return self.bits & ~other.bits == 0


def format_minute(minute_of_week: int) -> str:
    """``Fri 10:05`` for a minute of the week."""
    day, minute = divmod(minute_of_week, MINUTES_PER_DAY)
    return f"{DAYS[day].capitalize()} {minute // 60:02d}:{minute % 60:02d}"


def parse_windows(text: str) -> TimeWindows:
    """Parse a ``time`` criterion, or raise TimeWindowError with an offset."""
    spans: list[tuple[int, int]] = []
    offset = 0
    for piece in text.split(","):
        spans.extend(_Window(text, offset, offset + len(piece)).parse())
        offset += len(piece) + 1
    intervals = _merge(spans)
    table = bytearray(MINUTES_PER_WEEK)
    bits = 0
    for start, end in intervals:
        table[start:end] = b"\x01" * (end - start)
        bits |= ((1 << (end - start)) - 1) << start
    return TimeWindows(text, intervals, bytes(table), bits)


def _merge(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Fold spans into the week, then sort and merge overlapping ones."""
    folded: list[tuple[int, int]] = []
    for start, end in spans:
        if end > MINUTES_PER_WEEK:
            folded.append((start, MINUTES_PER_WEEK))
            folded.append((0, end - MINUTES_PER_WEEK))
        else:
            folded.append((start, end))
    folded.sort()
    merged: list[tuple[int, int]] = []
    for start, end in folded:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


class _Window:
    """A scanner over one comma-separated window of the criterion text."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.pos = start
        self.end = end

    def parse(self) -> list[tuple[int, int]]:
        self._skip()
        if self.pos >= self.end:
            raise TimeWindowError(
                "empty window: expected a weekday (mon ... sun) or HH:MM-HH:MM", self.pos
            )
        has_days = self.text[self.pos].isalpha()
        days = self._days() if has_days else list(range(7))
        self._skip()
        if has_days and self.pos >= self.end:
            return [(d * MINUTES_PER_DAY, (d + 1) * MINUTES_PER_DAY) for d in days]
        if not self.text[self.pos].isdigit():
            what = "a time range HH:MM-HH:MM" if has_days else "a weekday (mon ... sun)"
            raise TimeWindowError(f"expected {what}, not '{self._word()}'", self.pos)
        start_at = self.pos
        start = self._time(end_allowed=False)
        self._skip()
        if self.pos >= self.end or self.text[self.pos] != "-":
            raise TimeWindowError("expected '-' between the start and end times", self.pos)
        self.pos += 1
        self._skip()
        stop = self._time(end_allowed=True)
        self._skip()
        if self.pos < self.end:
            raise TimeWindowError(
                f"unexpected '{self._word()}': separate windows with commas", self.pos
            )
        if start == stop:
            raise TimeWindowError(
                "the window starts and ends at the same time: write 00:00-24:00 for a whole day",
                start_at,
            )
        spans = []
        for day in days:
            base = day * MINUTES_PER_DAY
            end = base + stop if stop > start else base + MINUTES_PER_DAY + stop
            spans.append((base + start, end))
        return spans

    def _skip(self) -> None:
        while self.pos < self.end and self.text[self.pos] in " \t":
            self.pos += 1

    def _word(self) -> str:
        match = _WORD.match(self.text, self.pos, self.end)
        return match.group(0) if match else self.text[self.pos : self.pos + 1]

    def _day(self) -> int:
        match = _LETTERS.match(self.text, self.pos, self.end)
        if match is None:
            raise TimeWindowError("expected a weekday (mon ... sun)", self.pos)
        word = match.group(0).lower()
        if word not in DAYS:
            hint = did_you_mean(word, DAYS) or " (use mon, tue, wed, thu, fri, sat, sun)"
            raise TimeWindowError(f"unknown weekday '{match.group(0)}'{hint}", self.pos)
        self.pos = match.end()
        return DAYS.index(word)

    def _days(self) -> list[int]:
        first = self._day()
        self._skip()
        if self.pos < self.end and self.text[self.pos] == "-":
            after = self.pos + 1
            while after < self.end and self.text[after] in " \t":
                after += 1
            if after < self.end and self.text[after].isalpha():
                self.pos = after
                last = self._day()
                return [(first + i) % 7 for i in range((last - first) % 7 + 1)]
        return [first]

    def _time(self, end_allowed: bool) -> int:
        match = _TIME.match(self.text, self.pos, self.end)
        if match is None:
            raise TimeWindowError(f"expected a time HH:MM, not '{self._word()}'", self.pos)
        hours, minutes = int(match.group(1)), int(match.group(2))
        if minutes > 59:
            raise TimeWindowError(f"minutes must be 00-59, not {minutes:02d}", match.start(2))
        if hours == 24 and minutes == 0:
            if not end_allowed:
                raise TimeWindowError("24:00 can only end a window", self.pos)
        elif hours > 23:
            raise TimeWindowError(f"hours must be 00-23 (or 24:00), not {hours}", self.pos)
        self.pos = match.end()
        return hours * 60 + minutes
