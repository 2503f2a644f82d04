"""A ``menu`` action: play its prompt, collect one digit, follow the option it names.

Each try is a one-key entry (``engine.calls.entry.KeyEntry``): digits typed
before or while the prompt plays are kept (type-ahead); with barge-in
(``media.barge_in``, the default) the first one stops the prompt. After the
prompt, the caller has ``timeout`` seconds to press a key. A key with an
option runs that option; a key without one runs ``on_invalid``, or counts as
a try. A try without a key counts too; after ``retries`` more tries the menu
runs ``on_timeout`` when the last try timed out, or ends the call (also when
the last try was a key with no option and no ``on_invalid``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.calls.entry import KeyEntry
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
        self.entry: KeyEntry | None = None

    def start(self) -> None:
        self.entry = KeyEntry(self.call, self.media, self.menu.prompt_path, self._keyed,
                              terminator=None, max_keys=1,
                              first_timeout=float(self.menu.timeout))  # fmt: skip
        self.entry.start()

    def _keyed(self, digit: str | None) -> None:
        if digit is None:
            self._again("no key pressed", timed_out=True)
            return
        option = self.menu.options.get(digit)
        if option is not None:
            self._leave(option, f"options.{digit}")
        elif self.menu.on_invalid is not None:
            self._leave(self.menu.on_invalid, "on_invalid")
        else:
            self._again("no option for key " + digit, timed_out=False)

    def _again(self, why: str, timed_out: bool) -> None:
        self.tries += 1
        if self.tries <= self.menu.retries:
            self.start()
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
        if self.entry is not None:
            self.entry.stop()
            self.entry = None  # it points back here: no cycle left behind
        if self.call.menu is self:
            self.call.menu = None
