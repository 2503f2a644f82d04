"""An engine's view of the mode store, refreshed every quarter of a second.

The router asks a customer's mode on every call, and the SIP layer whether
a number is ported away, so neither may wait on SQLite: :class:`ModeWatcher`
keeps both in memory and polls the store every ``interval`` seconds. A poll
ends the modes whose time is up (:meth:`ModeStore.expire_due`), takes the
changes nobody has reported yet (:meth:`ModeStore.take_changes`) and, when
the store's version moved, reloads the modes and the ported numbers. So a
change made by the command line, the HTTP API or another engine is in
effect here within one interval (the contract asks for one second).

``on_change`` hears of every mode change on the ``data_dir``, made here or
anywhere else, phone, cli, api or expiry alike, exactly once across all
the watchers of that ``data_dir`` (whichever polls first reports it): the
place to log it and e-mail the customer. Code that changes a mode in this
process (the DRS phone service) calls :meth:`ModeWatcher.refresh` afterwards,
which puts the change in effect here at once and reports it.

A poll that fails (the database locked past its busy timeout, a disk
error) keeps the last view, logs (at most every ten seconds) and is retried
at the next interval.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from engine.modes.store import ModeChange, ModeStore
from engine.ratelog import RateLimitedLog

__all__ = ["Clock", "ModeWatcher"]

log = logging.getLogger("vms.modes")


class Clock(Protocol):
    """The part of ``twisted.internet.interfaces.IReactorTime`` used here."""

    def seconds(self) -> float: ...

    def callLater(  # noqa: N802 - Twisted's name
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> Any: ...


class ModeWatcher:
    """Customer modes and ported numbers as this process applies them; see the module doc."""

    def __init__(
        self,
        store: ModeStore,
        clock: Clock,
        interval: float = 0.25,
        on_change: Callable[[list[ModeChange]], None] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be more than 0")
        self.store = store
        self.clock = clock
        self.interval = interval
        self.on_change = on_change
        #: customer -> mode, for the customers not in normal mode.
        self.modes: dict[str, str] = {}
        self.ported: frozenset[str] = frozenset()
        self._version: int | None = None
        self._call: Any = None
        self._warn = RateLimitedLog(log, clock)

    def start(self) -> None:
        """Load the modes now, then poll every ``interval``."""
        if self._call is None:
            self._tick()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def mode_of(self, customer: str) -> str:
        """For ``Router(trees, mode_of=watcher.mode_of)``."""
        return self.modes.get(customer, "normal")

    def is_ported(self, number: str) -> bool:
        return number in self.ported

    def _tick(self) -> None:
        try:
            self.refresh()
        finally:
            self._call = self.clock.callLater(self.interval, self._tick)

    def refresh(self) -> None:
        """Expire what is due, reload what moved and report the changes not reported yet."""
        try:
            self.store.expire_due()
            changes = self.store.take_changes()
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        try:
            self._reload()
        except sqlite3.Error as exc:
            self._failed(exc)  # the changes taken are reported all the same
        if changes and self.on_change is not None:
            self.on_change(changes)

    def _reload(self) -> None:
        # After the changes are taken: those are in the view loaded here, and one
        # made meanwhile moves the version again for the next poll.
        version = self.store.version()
        if version == self._version:
            return
        modes = {c: s.mode for c, s in self.store.all().items()}
        ported = self.store.ported()
        self._log_ported(ported)
        self.modes, self.ported, self._version = modes, ported, version

    def _failed(self, error: sqlite3.Error) -> None:
        self._warn.warning("poll", "%s: cannot read the customer modes (%s); the last ones "
                           "read stay in effect", self.store.path, error)  # fmt: skip

    def _log_ported(self, ported: frozenset[str]) -> None:
        if self._version is None:
            return  # the first load: nothing changed, and the numbers are in the store's audit
        for number in sorted(ported - self.ported):
            log.info("number %s is marked ported away: its calls get 404 from now on", number)
        for number in sorted(self.ported - ported):
            log.info("number %s is no longer marked ported away: it is served again", number)
