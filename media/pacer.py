"""The 20 ms clock of a media plane: one timer for every stream that sends or records.

Every tick is scheduled from an absolute origin, ``t0 + n × 20 ms``, never
as a chain of ``callLater(0.02)``: a chain accumulates the reactor's
lateness on every packet and drifts by seconds over a long prompt, while
an absolute schedule keeps each tick within the reactor's wake-up error of
where it belongs. One timer serves all of a plane's streams, so hundreds of
playing streams cost one reactor DelayedCall, not hundreds.

When the reactor was blocked for a while, the ticks it missed are run at
once (the audio stays complete and its rate right), but at most
``max_catch_up`` of them: after a longer stall the missed ticks are skipped
and counted, since a burst of stale audio is worse than a gap.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

__all__ = ["PACKET_INTERVAL", "Pacer", "Ticking"]

log = logging.getLogger(__name__)

PACKET_INTERVAL = 0.02
"""Seconds per packet: 160 samples of G.711 at 8 kHz."""

_EPSILON = 1e-6
"""Slack, in ticks, so that a timer firing exactly on schedule counts as due despite rounding."""


class Ticking(Protocol):
    """Something run on every tick while it is registered."""

    def on_tick(self) -> bool:
        """Do this tick's work; False to leave the pacer."""
        ...


class Pacer:
    """Runs its members once per tick, from the first member's arrival until the last leaves."""

    def __init__(
        self, clock: Any, interval: float = PACKET_INTERVAL, max_catch_up: int = 3
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._max_catch_up = max_catch_up
        self._members: dict[Ticking, None] = {}
        self._call: Any = None
        self._firing = False
        self._t0 = 0.0
        self._next = 0
        """Index of the next tick to run."""
        self.skipped = 0
        """Ticks dropped after stalls longer than ``max_catch_up`` ticks."""

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def add(self, member: Ticking) -> None:
        """Run ``member`` from the next tick on; the first member starts the clock at once."""
        self._members[member] = None
        if self._call is None and not self._firing:
            self._t0 = self._clock.seconds()
            self._next = 0
            self._call = self._clock.callLater(0, self._fire)

    def discard(self, member: Ticking) -> None:
        """Stop running ``member``; the clock stops with the last member."""
        self._members.pop(member, None)
        if not self._members and self._call is not None:
            self._call.cancel()
            self._call = None

    def _fire(self) -> None:
        self._call = None
        self._firing = True
        try:
            self._run_due()
        finally:
            self._firing = False
        if self._members:
            delay = self._t0 + self._next * self._interval - self._clock.seconds()
            self._call = self._clock.callLater(max(0.0, delay), self._fire)

    def _run_due(self) -> None:
        due = int((self._clock.seconds() - self._t0) / self._interval + _EPSILON)
        behind = due - self._next + 1
        if behind > self._max_catch_up:
            self.skipped += behind - 1
            self._next = due
        members = self._members
        while self._next <= due and members:
            for member in list(members):
                if member not in members:
                    continue
                try:
                    stay = member.on_tick()
                except Exception:
                    # One broken member must not stop the clock of every other call.
                    log.exception("media tick failed for %r; it leaves the pacer", member)
                    stay = False
                if not stay:
                    members.pop(member, None)
            self._next += 1
