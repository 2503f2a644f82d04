"""Music on hold with periodic announcements: what a caller waiting in a queue hears.

Agent Contact Management parks callers in a queue; while they wait they
hear music, interrupted every ``every`` seconds by an announcement (their
position, the expected wait) that the queue composes when it is due, since
both change while the caller waits. After an announcement the music picks
up where it was, not from the start, as a caller expects. The player drives
one stream through its ``play``/``stop_playing`` interface and takes the
time from an ``IReactorTime``, so it is tested with ``task.Clock``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = ["HoldPlayer", "Player"]

FRAME_SECONDS = 0.02


class Player(Protocol):
    """What the hold player needs of a stream (``media.stream.RtpStream``)."""

    def play(self, frames: Sequence[bytes], on_done: Callable[[], None] | None = None) -> None: ...

    def stop_playing(self) -> None: ...


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(  # noqa: N802 - Twisted's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...


class HoldPlayer:
    """Loops ``music`` on ``stream``; every ``every`` seconds plays ``announcement()`` first.

    ``announcement`` returns the frames to play now, or None to skip this turn
    (nothing worth saying). ``first`` is the delay before the first one
    (default: ``every``); a queue typically announces the position at once.
    """

    def __init__(
        self,
        stream: Player,
        clock: Clock,
        music: Sequence[bytes],
        every: float,
        announcement: Callable[[], Sequence[bytes] | None],
        first: float | None = None,
    ) -> None:
        if not music:
            raise ValueError("music on hold needs at least one frame")
        if every <= 0:
            raise ValueError(f"announcements need a positive period, not {every!r}")
        self.stream = stream
        self.clock = clock
        self.music = music
        self.every = every
        self.announcement = announcement
        self.first = every if first is None else first
        self.running = False
        self.announcing = False
        self._position = 0  # the music frame where the current play started
        self._since = 0.0  # when it started
        self._timer: Any = None
        self._due = 0.0  # when the next announcement is due: a fixed grid, no drift
        self._turn = 0  # which play is current, so a stale on_done does nothing

    def start(self) -> None:
        self.running = True
        self._music(0)
        self._due = self.clock.seconds() + self.first
        self._timer = self.clock.callLater(self.first, self._announce)

    def stop(self) -> None:
        """Silence: the caller leaves the queue (answered, hung up, timed out)."""
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._turn += 1
        self.stream.stop_playing()

    def _music(self, position: int) -> None:
        self._turn += 1
        turn = self._turn
        self._position = position % len(self.music)
        self._since = self.clock.seconds()
        self.stream.play(self.music[self._position :], lambda: self._music_done(turn))

    def _music_done(self, turn: int) -> None:
        if self.running and turn == self._turn:
            self._music(0)  # the end of the music: loop

    def _announce(self) -> None:
        self._timer = None
        if not self.running:
            return
        frames = None if self.announcing else self.announcement()  # one at a time
        if frames:
            played = round((self.clock.seconds() - self._since) / FRAME_SECONDS)
            resume = self._position + played
            self._turn += 1
            turn = self._turn
            self.announcing = True
            self.stream.play(frames, lambda: self._announced(turn, resume))
        self._due += self.every
        self._timer = self.clock.callLater(max(0.0, self._due - self.clock.seconds()),
                                           self._announce)  # fmt: skip

    def _announced(self, turn: int, resume: int) -> None:
        if self.running and turn == self._turn:
            self.announcing = False
            self._music(resume)
