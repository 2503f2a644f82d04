"""Music on hold with periodic announcements, on a fake clock and a fake stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from twisted.internet.task import Clock

from media.hold import HoldPlayer

MUSIC = [bytes([n]) * 160 for n in range(250)]  # 5 s of "music", each frame numbered
NEWS = [b"\xaa" * 160] * 100  # a 2 s announcement


class Stream:
    """Plays like an RtpStream: one frame per 20 ms of the clock, then on_done."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.frames: Sequence[bytes] = []
        self.on_done: Callable[[], None] | None = None
        self.started = 0.0
        self.past: list[bytes] = []  # what finished or was cut, in order

    def play(self, frames: Sequence[bytes], on_done: Callable[[], None] | None = None) -> None:
        self._collect()
        self.frames, self.on_done, self.started = frames, on_done, self.clock.seconds()

    def stop_playing(self) -> None:
        self._collect()
        self.frames, self.on_done = [], None

    def _collect(self) -> None:
        self.past += self._current()

    def _current(self) -> list[bytes]:
        return list(self.frames[: round((self.clock.seconds() - self.started) / 0.02)])

    @property
    def heard(self) -> list[bytes]:
        """Every frame sent so far."""
        return self.past + self._current()

    def run(self, seconds: float) -> None:
        """Advance in 20 ms steps, finishing plays as a real stream would."""
        for _ in range(round(seconds / 0.02)):
            self.clock.advance(0.02)
            elapsed = self.clock.seconds() - self.started
            if self.frames and elapsed >= len(self.frames) * 0.02 - 1e-9:
                done, frames = self.on_done, self.frames
                self.past += list(frames)
                self.frames, self.on_done = [], None
                if done is not None:
                    done()


def test_music_loops_and_announcements_interrupt_then_resume_where_it_was() -> None:
    clock = Clock()
    stream = Stream(clock)
    said = []

    def announcement() -> list[bytes]:
        said.append(clock.seconds())
        return NEWS

    player = HoldPlayer(stream, clock, MUSIC, every=3.0, announcement=announcement)
    player.start()
    stream.run(2.98)
    assert stream.heard[:149] == MUSIC[:149]
    stream.run(0.04)  # at 3 s: the announcement cuts in
    assert player.announcing
    stream.run(2.0)  # the announcement is over: the music goes on from frame 150
    assert not player.announcing
    stream.run(0.5)
    heard = stream.heard
    start = heard.index(NEWS[0])
    after = heard[start + len(NEWS):]
    assert after[0] == MUSIC[150]  # resumed, not restarted
    stream.run(10)
    assert said == pytest.approx([3.0, 6.0, 9.0, 12.0, 15.0], abs=0.03)
    assert MUSIC[0] in stream.heard[len(MUSIC):]  # looped at its end


def test_a_turn_with_nothing_to_say_keeps_the_music() -> None:
    clock = Clock()
    stream = Stream(clock)
    player = HoldPlayer(stream, clock, MUSIC, every=1.0, announcement=lambda: None, first=0.5)
    player.start()
    stream.run(3.0)
    assert stream.heard[:150] == MUSIC[:150]


def test_stop_silences_and_cancels_the_next_announcement() -> None:
    clock = Clock()
    stream = Stream(clock)
    calls = []
    player = HoldPlayer(stream, clock, MUSIC, every=1.0,
                        announcement=lambda: calls.append(1) or NEWS)  # fmt: skip
    player.start()
    stream.run(0.5)
    player.stop()
    assert stream.frames == []
    stream.run(3.0)
    assert calls == [] and not clock.getDelayedCalls()


def test_an_announcement_longer_than_the_period_is_not_cut_by_the_next() -> None:
    clock = Clock()
    stream = Stream(clock)
    player = HoldPlayer(stream, clock, MUSIC, every=1.0, announcement=lambda: NEWS)
    player.start()
    stream.run(1.02)
    first = stream.started
    stream.run(1.5)  # the 1 s period came during the 2 s announcement: skipped
    assert stream.started == first


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        HoldPlayer(Stream(Clock()), Clock(), [], 1.0, lambda: None)
    with pytest.raises(ValueError, match="positive period"):
        HoldPlayer(Stream(Clock()), Clock(), MUSIC, 0, lambda: None)


def test_on_a_real_stream_the_packets_are_music_news_then_music_again() -> None:
    from mediakit import PARTY, FakeReactor, make_plane

    reactor = FakeReactor()
    stream = make_plane(reactor).open_stream()
    stream.configure(PARTY, "PCMU", 0, 101)
    player = HoldPlayer(stream, reactor, MUSIC, every=1.0, announcement=lambda: NEWS[:10])
    player.start()
    for _ in range(80):
        reactor.advance(0.02)
    sent = [p.payload for p in reactor.ports[stream.port].packets()]
    assert sent[:50] == MUSIC[:50]
    assert sent[50:60] == NEWS[:10]  # at 1 s, the announcement
    assert sent[60:75] == MUSIC[50:65]  # then the music from where it stopped
    player.stop()
