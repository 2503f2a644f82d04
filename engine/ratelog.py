"""Log lines that cannot flood the log.

A flood of malformed packets or excess INVITEs must not turn into a flood
of log lines: each kind of event is logged at most once per interval, with
the count of those suppressed since. Formatting happens only when a line
is actually written.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most one line per ``interval`` seconds for each key."""

    def __init__(self, logger: logging.Logger, clock: Any, interval: float = 10.0) -> None:
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any) -> None:
        self._log(key, logging.WARNING, False, message, args)

    def exception(self, key: str, message: str, *args: Any) -> None:
        """An error with the traceback being handled, as ``Logger.exception``."""
        self._log(key, logging.ERROR, True, message, args)

    def _log(self, key: str, level: int, exc_info: bool, message: str,
             args: tuple[Any, ...]) -> None:  # fmt: skip
        now = self.clock.seconds()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            message += " (%d more like this suppressed)"
            args = (*args, skipped)
        self.logger.log(level, message, *args, exc_info=exc_info)
