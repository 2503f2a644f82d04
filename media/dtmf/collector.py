"""Merges the digits of one call leg from RFC 4733, in-band tones and SIP INFO.

A phone that sends RFC 4733 often leaves the tones in the audio too, so the
same press can arrive twice from two detectors; each detector already
reports a press once, so two reports from one source are two presses.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DUPLICATE_WINDOW", "TYPE_AHEAD", "DigitCollector"]

TYPE_AHEAD = 32
"""Digits kept for a menu at most; older ones are dropped (a caller leaning on the keypad)."""

DUPLICATE_WINDOW = 0.1
"""Seconds within which the same key from another source is the same press.

In-band detection confirms 40 to 60 ms after the RFC 4733 start packet, and
two real presses of one key are at least 80 ms apart (40 ms tone, 40 ms pause).
"""


class DigitCollector:
    """A FIFO of type-ahead digits, with cross-source duplicates removed."""

    def __init__(self) -> None:
        self._queue: deque[str] = deque(maxlen=TYPE_AHEAD)
        self._last: tuple[str, str, float] | None = None

    def push(self, digit: str, source: str, now: float) -> bool:
        """Queue ``digit`` from ``source`` at ``now`` (seconds); False when it was a duplicate."""
        last = self._last
        if (
            last is not None
            and last[0] == digit
            and last[1] != source
            and now - last[2] <= DUPLICATE_WINDOW
        ):
            return False
        self._last = (digit, source, now)
        self._queue.append(digit)
        return True

    @property
    def pending(self) -> int:
        """Digits typed and not yet taken."""
        return len(self._queue)

    def take(self) -> str | None:
        """The oldest digit not yet taken, or None."""
        return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        """Forget the type-ahead (e.g. when a menu must not accept early keys)."""
        self._queue.clear()
