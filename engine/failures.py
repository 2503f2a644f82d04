"""Failed attempts per source address in a sliding window, to slow down guessing.

Shared by the checks that face strangers (the API's tokens, SIP digest
registration): each failure is remembered for ``window`` seconds; a source
with ``limit`` of them is refused without any further checking until the
oldest ages out. Memory stays bounded: past ``tracked`` sources, those whose
failures are all old are forgotten first.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

__all__ = ["FailureWindow"]


class Clock(Protocol):
    def seconds(self) -> float: ...


class FailureWindow:
    """Counts failures per source; :meth:`blocked` says for how long one is refused."""

    def __init__(
        self, clock: Clock, limit: int = 5, window: float = 60.0, tracked: int = 4096
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.tracked = tracked
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, source: str, pending: int = 0) -> int | None:
        """Whole seconds until ``source`` may try again, or None if it may now.

        ``pending`` counts attempts under way that may yet fail (they count
        as failures, so many at once cannot slip past the limit).
        """
        times = self._failures.get(source)
        now = self.clock.seconds()
        while times and times[0] <= now - self.window:
            times.popleft()
        count = len(times) if times else 0
        if count + pending < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now)) if times else 1

    def failed(self, source: str) -> None:
        now = self.clock.seconds()
        if source not in self._failures and len(self._failures) >= self.tracked:
            old = [s for s, t in self._failures.items() if not t or t[-1] <= now - self.window]
            for stale in old:
                del self._failures[stale]
        self._failures.setdefault(source, deque()).append(now)
