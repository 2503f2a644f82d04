"""Many cheap timers on one reactor timer.

Every SIP transaction runs two or three timers (G, H, I for an INVITE
answered with a 302), nearly all cancelled before they fire. Twisted's
``callLater`` costs a DelayedCall and a heap operation in the reactor for
each; here a timer is a small object on our own heap, cancelling only marks
it, and the reactor holds a single DelayedCall for the earliest deadline.
The clock is any ``IReactorTime`` (the reactor, or ``task.Clock`` in tests).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Clock", "Timer", "TimerQueue"]

log = logging.getLogger(__name__)


class Clock(Protocol):
    """The part of ``twisted.internet.interfaces.IReactorTime`` used here."""

    def seconds(self) -> float: ...

    def callLater(  # noqa: N802 - Twisted's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...


class Timer:
    """A pending call; ``cancel()`` is idempotent and O(1)."""

    __slots__ = ("args", "deadline", "fn")

    def __init__(self, deadline: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.deadline = deadline
        self.fn: Callable[..., Any] | None = fn
        self.args = args

    @property
    def active(self) -> bool:
        return self.fn is not None

    def cancel(self) -> None:
        self.fn = None
        self.args = ()


class TimerQueue:
    """Schedules Timers on a heap, driving it from one reactor DelayedCall."""

    #: Timers due within this many seconds of each other fire in one batch.
    SLACK = 0.001

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._armed: Any = None
        self._armed_at = float("inf")

    def __len__(self) -> int:
        return len(self._heap)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        deadline = self.clock.seconds() + delay
        timer = Timer(deadline, fn, args)
        heapq.heappush(self._heap, (deadline, next(self._seq), timer))
        if deadline < self._armed_at:
            self._arm(deadline)
        return timer

    def _arm(self, deadline: float) -> None:
        if self._armed is not None and self._armed.active():
            self._armed.cancel()
        self._armed_at = deadline
        self._armed = self.clock.callLater(max(0.0, deadline - self.clock.seconds()), self._run)

    def _run(self) -> None:
        self._armed = None
        self._armed_at = float("inf")
        heap = self._heap
        limit = self.clock.seconds() + self.SLACK
        while heap and heap[0][0] <= limit:
            timer = heapq.heappop(heap)[2]
            fn = timer.fn
            if fn is not None:
                timer.fn = None
                try:
                    fn(*timer.args)
                except Exception:
                    log.exception("timer callback %r failed", fn)
        while heap and heap[0][2].fn is None:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
