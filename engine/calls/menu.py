"""A ``menu`` action: play its prompt, collect one digit, follow the option it names.

Digits typed before or while the prompt plays are kept (type-ahead); with
barge-in (``media.barge_in``, the default) the first one stops the prompt.
After the prompt, the caller has ``timeout`` seconds to press a key. A key
with an option runs that option; a key without one runs ``on_invalid``, or
counts as a try. A try without a key counts too; after ``retries`` more
tries the menu runs ``on_timeout`` when the last try timed out, or ends the
call (also when the last try was a key with no option and no ``on_invalid``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.sip.timers import Timer
from routing_trees.model import Action, Menu

if TYPE_CHECKING:
    from engine.calls.call import Call
    from engine.calls.media import CallMedia

__all__ = ["MenuRun"]


class MenuRun:
    """One menu being played to one caller."""

    def __init__(self, call: Call, media: CallMedia, menu: Menu, path: str) -> None:
        self.call = call
        self.media = media
        self.menu = menu
        self.path = path
        self.tries = 0
        self.playing = False
        self.timer: Timer | None = None

    def start(self) -> None:
        self.media.listen(self._digit)
        self._prompt()

    def _prompt(self) -> None:
        if self._take():
            return
        self.playing = True
        self.media.play(self.menu.prompt_path, self._prompt_done)

    def _digit(self) -> None:
        if self.playing:
            if not self.media.services.settings.barge_in:
                return  # kept; taken when the prompt ends
            self.media.stop_playing()
            self.playing = False
        self._take()

    def _prompt_done(self) -> None:
        self.playing = False
        if self._take():
            return
        self.timer = self.call.ctx.stack.timers.call_later(float(self.menu.timeout),
                                                           self._timed_out)  # fmt: skip

    def _take(self) -> bool:
        """Act on the oldest digit typed, if any; True when there was one."""
        digit = self.media.digits.take()
        if digit is None:
            return False
        self._stop_timer()
        option = self.menu.options.get(digit)
        if option is not None:
            self._leave(option, f"options.{digit}")
        elif self.menu.on_invalid is not None:
            self._leave(self.menu.on_invalid, "on_invalid")
        else:
            self._again("no option for key " + digit, timed_out=False)
        return True

    def _timed_out(self) -> None:
        self.timer = None
        self._again("no key pressed", timed_out=True)

    def _again(self, why: str, timed_out: bool) -> None:
        self.tries += 1
        if self.tries <= self.menu.retries:
            self._prompt()
        elif timed_out and self.menu.on_timeout is not None:
            self._leave(self.menu.on_timeout, "on_timeout")
        else:
            self.stop()
            self.call.menu_gave_up(why)

    def _leave(self, action: Action, key: str) -> None:
        self.stop()
        self.call.execute(action, f"{self.path}.{key}" if self.path else key)

    def stop(self) -> None:
        """The menu is over (an option chosen, or the call ended): stop listening and timing."""
        self._stop_timer()
        self.media.listen(None)
        if self.playing:
            self.media.stop_playing()
            self.playing = False
        if self.call.menu is self:
            self.call.menu = None

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
