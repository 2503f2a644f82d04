"""Many cheap timers on one reactor timer: a hashed timing wheel.

Every SIP transaction runs two or three timers (G, H, I for an INVITE
answered with a 302), nearly all cancelled before they fire, and tens of
thousands are pending at once under load. Twisted's ``callLater`` costs a
DelayedCall and a heap operation in the reactor for each, and a heap of our
own still costs a log-time push. Here time is cut into ticks of
``resolution`` seconds: a timer is appended to its tick's bucket, cancelling
only marks it, and a small heap holds the distinct ticks that have buckets
(a handful per second), so scheduling is O(1) in the number of timers. A
timer fires at the first tick at or after its deadline, never early and at
most one resolution late; RFC 3261 timers are hundreds of milliseconds and
more. The clock is any ``IReactorTime`` (the reactor, or ``task.Clock``).
"""

from __future__ import annotations

import heapq
import logging
import math
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

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn: Callable[..., Any] | None = fn
        self.args = args

    @property
    def active(self) -> bool:
        return self.fn is not None

    def cancel(self) -> None:
        self.fn = None
        self.args = ()


class TimerQueue:
    """Buckets of Timers per tick, driven from one reactor DelayedCall."""

    def __init__(self, clock: Clock, resolution: float = 0.01) -> None:
        self.clock = clock
        self.resolution = resolution
        self._buckets: dict[int, list[Timer]] = {}
        self._ticks: list[int] = []
        self._armed: Any = None
        self._armed_tick: float = math.inf
        self.pending = 0

    def __len__(self) -> int:
        return self.pending

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        timer = Timer(fn, args)
        # The first tick at or after the deadline (the epsilon absorbs float
        # noise, so a deadline on a tick boundary fires on that tick).
        tick = math.ceil((self.clock.seconds() + delay) / self.resolution - 1e-6)
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [timer]
            heapq.heappush(self._ticks, tick)
            if tick < self._armed_tick:
                self._arm(tick)
        else:
            bucket.append(timer)
        self.pending += 1
        return timer

    def _arm(self, tick: int) -> None:
        if self._armed is not None and self._armed.active():
            self._armed.cancel()
        self._armed_tick = tick
        delay = max(0.0, tick * self.resolution - self.clock.seconds())
        self._armed = self.clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._armed = None
        self._armed_tick = math.inf
        ticks = self._ticks
        now_tick = self.clock.seconds() / self.resolution + 1e-6
        while ticks and ticks[0] <= now_tick:
            bucket = self._buckets.pop(heapq.heappop(ticks))
            self.pending -= len(bucket)
            for timer in bucket:
                fn = timer.fn
                if fn is None:
                    continue
                args, timer.fn, timer.args = timer.args, None, ()  # keeps nothing alive
                try:
                    fn(*args)
                except Exception:
                    log.exception("timer callback %r failed", fn)
        if ticks and ticks[0] < self._armed_tick:
            self._arm(ticks[0])
