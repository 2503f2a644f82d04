"""Keyed entry: play a prompt, collect keys up to ``#`` (a customer number, a password).

Keys typed before or during the prompt count (type-ahead); with barge-in the
first one stops the prompt. ``*`` starts the entry over, as phone services
usually let a caller correct a mistake. After the prompt the caller has
``first_timeout`` seconds for the first key and ``next_timeout`` for each
next one; silence, or more than ``max_keys`` keys, ends the entry with None.
With ``terminator=None`` the entry ends after ``max_keys`` keys (a one-key
choice). The keys are never logged: they may be a password.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.sip.timers import Timer

if TYPE_CHECKING:
    from engine.calls.call import Call
    from engine.calls.media import CallMedia

__all__ = ["KeyEntry", "PhoneService"]


class KeyEntry:
    """One entry on one call; ``done(keys)`` once, with the keys or None."""

    def __init__(
        self, call: Call, media: CallMedia, prompt: str, done: Callable[[str | None], None], *,
        terminator: str | None = "#", max_keys: int = 32, first_timeout: float = 10.0,
        next_timeout: float = 5.0,
    ) -> None:  # fmt: skip
        self.call = call
        self.media = media
        self.prompt = prompt
        self.done = done
        self.terminator = terminator
        self.max_keys = max_keys
        self.first_timeout = first_timeout
        self.next_timeout = next_timeout
        self.keys: list[str] = []
        self.playing = False
        self.over = False
        self.timer: Timer | None = None
        #: When the entry ended (the terminating key), for the service's latency figures.
        self.ended_at: float | None = None

    def start(self) -> None:
        self.media.listen(self._key)
        self.playing = True
        if not self.media.play(self.prompt, self._prompt_done):
            self._finish(None)
            return
        if self.media.digits.pending:  # typed ahead during an earlier prompt
            self._key()

    def _key(self) -> None:
        if self.playing:
            if not self.media.services.settings.barge_in:
                return  # kept: taken when the prompt ends
            self.media.stop_playing()
            self.playing = False
        self._drain()

    def _prompt_done(self) -> None:
        self.playing = False
        self._drain()

    def _drain(self) -> None:
        while not self.over:
            key = self.media.digits.take()
            if key is None:
                break
            if key == self.terminator:
                self._finish("".join(self.keys))
            elif key == "*" and self.terminator is not None:  # a one-key choice may be "*"
                self.keys.clear()
            else:
                self.keys.append(key)
                if len(self.keys) >= self.max_keys:
                    self._finish("".join(self.keys) if self.terminator is None else None)
        if not self.over and not self.playing:
            self._wait(self.next_timeout if self.keys else self.first_timeout)

    def _wait(self, seconds: float) -> None:
        self._stop_timer()
        self.timer = self.call.ctx.stack.timers.call_later(seconds, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        self._finish(None)

    def _finish(self, keys: str | None) -> None:
        if self.over:
            return
        self.ended_at = self.call.ctx.now()
        self.stop()
        self.done(keys)

    def stop(self) -> None:
        """Stop listening, timing and playing (the entry ended, or the call did)."""
        self.over = True
        self._stop_timer()
        self.media.listen(None)
        if self.playing:
            self.media.stop_playing()
            self.playing = False

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class PhoneService:
    """A service the engine runs on a call it answered itself: prompts by role, entries, the end.

    The DRS service and the operators' phone service are dialogues of key
    entries and spoken answers; this is what they share. ``stop`` drops the
    entry (it points back at the call: no cycle is left behind).
    """

    #: How the service names itself when it ends the call ("DRS service: locked").
    NAME = "service"

    def __init__(self, call: Call, media: CallMedia, prompts: Mapping[str, str]) -> None:
        self.call = call
        self.media = media
        self.prompts = prompts
        self.entry: KeyEntry | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.entry is not None:
            self.entry.stop()
            self.entry = None

    def _ask(self, prompt: str, done: Callable[[str | None], None], **options: Any) -> None:
        self.entry = KeyEntry(self.call, self.media, self.prompts[prompt], done, **options)
        self.entry.start()

    def _say(self, prompt: str, then: Callable[[], None]) -> None:
        if not self.media.play(self.prompts[prompt], then):
            self._end("its prompt is missing")

    def _end(self, why: str) -> None:
        self.call.hang_up(f"{self.NAME}: {why}")
