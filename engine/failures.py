"""Failed attempts per source in a sliding window, to slow down guessing.

Shared by the checks that face strangers (the API's tokens, SIP digest
registration, the operators' phone service): each failure is remembered for
``window`` seconds; a source with ``limit`` of them is refused without any
further checking until the oldest ages out. A source is any hashable key: an
address, or (address, user name) where one address is shared by many users.

Memory and work stay bounded whatever arrives (a flood of failures from
forged UDP sources): sources are kept in order of their last failure, at
most ``tracked`` of them and at most ``limit`` failure times each (the older
ones no longer change any answer). Each call does O(1) work amortised: the
sources whose failures have all aged out are dropped from the old end, and
when the table is still full the source that failed longest ago is
forgotten (it may then try ``limit`` times again: the price of the cap).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Protocol

__all__ = ["FailureWindow"]


class Clock(Protocol):
    def seconds(self) -> float: ...


class FailureWindow:
    """Counts failures per source; :meth:`blocked` says for how long one is refused."""

    def __init__(
        self, clock: Clock, limit: int = 5, window: float = 60.0, tracked: int = 4096
    ) -> None:
        if tracked < 1:
            raise ValueError("tracked must be at least 1")
        self.clock = clock
        self.limit = limit
        self.window = window
        self.tracked = tracked
        #: source -> its recent failure times (oldest first); least recently failed first
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    @property
    def size(self) -> int:
        """How many sources are remembered now (at most ``tracked``)."""
        return len(self._failures)

    def blocked(self, source: Hashable, pending: int = 0) -> int | None:
        """Whole seconds until ``source`` may try again, or None if it may now.

        ``pending`` counts attempts under way that may yet fail (they count
        as failures, so many at once cannot slip past the limit).
        """
        now = self.clock.seconds()
        times = self._failures.get(source)
        if times is not None:
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[source]
                times = None
        count = len(times) if times is not None else 0
        if count + pending < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now)) if times else 1

    def failed(self, source: Hashable) -> None:
        now = self.clock.seconds()
        failures = self._failures
        times = failures.get(source)
        if times is None:
            self._forget_old(now)
            if len(failures) >= self.tracked:
                failures.popitem(last=False)  # all recent: the one that failed longest ago
            # The newest ``limit`` times decide every answer: older ones are dropped.
            times = failures[source] = deque(maxlen=max(1, self.limit))
        else:
            failures.move_to_end(source)
        times.append(now)

    def _forget_old(self, now: float) -> None:
        """Drop the sources whose every failure has aged out (they sit at the old end)."""
        failures = self._failures
        while failures:
            source, times = next(iter(failures.items()))
            if times and times[-1] > now - self.window:
                return
            del failures[source]
