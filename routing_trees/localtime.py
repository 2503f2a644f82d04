"""Local time of a call in a tree's timezone, cached per wall-clock minute.

Time criteria need the local minute of the week and calendars the local
date. Converting with zoneinfo costs a few microseconds, more than a whole
compiled evaluation, so each timezone keeps a cache keyed by the UNIX
minute: UTC offsets change only on minute boundaries, so every second of a
UNIX minute has the same local minute, and DST is exact at no cost.
(Pre-1900 "local mean time" offsets with seconds are the one exception;
no call happens then.)
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .timewindows import MINUTES_PER_DAY

__all__ = ["LocalClock", "clock_for"]

_CACHE_LIMIT = 4096


class LocalClock:
    """Maps UNIX time to ``(minute_of_week, local_date_ordinal)`` in one timezone."""

    __slots__ = ("cache", "tz", "zone")

    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.tz = ZoneInfo(zone)
        self.cache: dict[int, tuple[int, int]] = {}
        """UNIX minute to its local minute of the week and date ordinal;
        read directly by the compiled evaluator's hot path."""

    def local(self, at: float) -> tuple[int, int]:
        """Local minute of the week (Monday 00:00 = 0) and date ordinal for ``at``."""
        minute = int(at // 60)
        found = self.cache.get(minute)
        return found if found is not None else self.fill(minute)

    def fill(self, minute: int) -> tuple[int, int]:
        """Compute and remember one UNIX minute (the cache is dropped when full)."""
        moment = datetime.fromtimestamp(minute * 60, self.tz)
        value = (
            moment.weekday() * MINUTES_PER_DAY + moment.hour * 60 + moment.minute,
            moment.toordinal(),
        )
        if len(self.cache) >= _CACHE_LIMIT:
            self.cache.clear()
        self.cache[minute] = value
        return value

    def datetime(self, at: float) -> datetime:
        """The aware local datetime of ``at`` (for explanations, not the hot path)."""
        return datetime.fromtimestamp(at, self.tz)


_CLOCKS: dict[str, LocalClock] = {}


def clock_for(zone: str) -> LocalClock:
    """The shared clock of one timezone (trees in the same zone share its cache)."""
    clock = _CLOCKS.get(zone)
    if clock is None:
        clock = _CLOCKS[zone] = LocalClock(zone)
    return clock
