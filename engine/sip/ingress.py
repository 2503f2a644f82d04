"""A bounded receive queue that tells when the engine falls behind.

Reading a datagram is cheap, handling it is not; under a burst the backlog
would otherwise wait invisibly in the kernel's socket buffer while clients
retransmit into it. Here the transport only stamps and queues what it reads,
and a drain handles the queue in slices of bounded duration so timers (and
retransmissions of accepted transactions) keep running. Each item is handed
over with ``overloaded`` set when it waited longer than ``max_delay`` or the
queue is longer than ``high_water``: the stack then answers new INVITEs with
503 at once instead of routing them. Past ``max_items`` new arrivals are
dropped and counted (a flood the queue cannot absorb).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.sip.timers import Clock

__all__ = ["Ingress"]

log = logging.getLogger(__name__)


class Ingress:
    """FIFO of received items, drained in time-bounded slices."""

    def __init__(
        self,
        clock: Clock,
        handler: Callable[[Any, bool], None],
        *,
        max_delay: float = 0.2,
        high_water: int = 2000,
        max_items: int = 20000,
        slice_seconds: float = 0.02,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.clock = clock
        self.handler = handler
        self.max_delay = max_delay
        self.high_water = high_water
        self.max_items = max_items
        self.slice_seconds = slice_seconds
        self.now = now or clock.seconds
        self._queue: deque[tuple[float, Any]] = deque()
        self._scheduled = False
        self.dropped = 0
        self.overloaded_items = 0

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, item: Any) -> None:
        if len(self._queue) >= self.max_items:
            self.dropped += 1
            return
        self._queue.append((self.now(), item))
        if not self._scheduled:
            self._scheduled = True
            self.clock.callLater(0, self.drain)

    def drain(self) -> None:
        """Handle queued items until the queue is empty or the slice is spent."""
        self._scheduled = False
        queue = self._queue
        now = self.now
        deadline = now() + self.slice_seconds
        while queue:
            stamp, item = queue.popleft()
            t = now()
            overloaded = t - stamp > self.max_delay or len(queue) > self.high_water
            if overloaded:
                self.overloaded_items += 1
            try:
                self.handler(item, overloaded)
            except Exception:
                log.exception("failed to handle a received message")
            if t > deadline:
                break
        if queue and not self._scheduled:
            self._scheduled = True
            self.clock.callLater(0, self.drain)
