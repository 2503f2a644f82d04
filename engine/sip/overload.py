"""When has the engine fallen behind? Measured lag, not guesses.

Two measurements feed one answer:

- the age of the oldest datagram waiting in the UDP socket, from the kernel's
  receive timestamp (SO_TIMESTAMP) of the first datagram of each read batch:
  the kernel queue is FIFO, so the first is the oldest and every later one
  is younger; the queue itself is bounded by the socket's receive buffer;
- the lateness of a periodic reactor call, which catches an engine busy for
  any reason (TCP load, a slow reload) even when UDP is quiet.

While either exceeds ``max_delay`` the stack answers new INVITEs with 503 and
Retry-After at once, instead of routing them late into client
retransmissions; ACKs, retransmissions of accepted transactions and other
methods are still served.
"""

from __future__ import annotations

__all__ = ["Overload"]


class Overload:
    """The engine's lag, from queue ages and loop lateness, against a bound."""

    #: A queue age older than this many seconds no longer describes the present.
    FRESH = 1.0

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay
        self.queue_age = 0.0
        self.measured_at = float("-inf")
        self.loop_lag = 0.0
        self.episodes = 0
        self._was = False

    def note_queue_age(self, age: float, now: float) -> bool:
        """Record the age of the oldest waiting datagram; True when overloaded."""
        self.queue_age = age
        self.measured_at = now
        return self._update(now)

    def note_loop_lag(self, lag: float, now: float) -> bool:
        self.loop_lag = lag
        return self._update(now)

    def overloaded(self, now: float) -> bool:
        return self._update(now)

    def _update(self, now: float) -> bool:
        queue = self.queue_age if now - self.measured_at < self.FRESH else 0.0
        state = max(queue, self.loop_lag) > self.max_delay
        if state and not self._was:
            self.episodes += 1
        self._was = state
        return state
