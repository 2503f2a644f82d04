"""One operator's state: everything that changes it is in ``OperatorState.TABLE``.

The table is the spec of issue 6 ("Operator states") a reviewer can hold it
against: logged out, available, reserved (chosen for a call, not yet rung),
ringing, on call, wrap-up, break (with a reason). Two rules live in code beside
it, in :meth:`OperatorState.fire`:

- an unanswered offer that makes ``auto_break_after`` in a row (the offering
  group's setting; 0 never) is the event ``auto_break``, not ``no_answer``;
- an event with no row for the current state is *refused* (:class:`RefusedError`),
  not absorbed as the SIP tables do: events here are commands (an operator
  keying *break* while on a call, an API logout of a ringing operator) and
  the caller must answer them with what went wrong, and a call-layer event
  out of turn is a bug to surface, not a retransmission to drop.

Wrap-up ends by itself after the group's ``wrap_up`` seconds (a timer on the
injected clock, cancelled when the operator leaves wrap-up another way), or
earlier when the operator says so (``wrap_up_done``). ``idle_since``, what the
longest-idle strategy sorts on, is when the operator last became free for
work: login, resume, end of wrap-up; a released reservation or an unanswered
offer does not reset it. Every transition is reported to ``listener``, so the
engine can publish it to the shared state, the timer's included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from engine.acm.model import Group
from engine.sip.timers import Clock
from engine.tables import Machine, Row

__all__ = ["AUTO_BREAK_REASON", "OperatorState", "RefusedError"]

#: The break reason of an operator put on break for not answering.
AUTO_BREAK_REASON = "no answer"


class RefusedError(Exception):
    """An event the operator's current state has no row for."""

    def __init__(self, operator: str, state: str, event: str) -> None:
        super().__init__(f"operator '{operator}' is {state.replace('_', ' ')}: cannot {event}")
        self.operator = operator
        self.state = state
        self.event = event


class OperatorState(Machine):
    """The state of one operator, driven by :meth:`fire`."""

    INITIAL = "logged_out"
    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("logged_out", "login"): ("available", ("idle", "reset_misses")),
        ("available", "logout"): ("logged_out", ()),
        ("available", "break"): ("break", ("set_reason",)),
        ("available", "reserve"): ("reserved", ("set_group",)),
        ("reserved", "release"): ("available", ()),
        ("reserved", "offer"): ("ringing", ()),
        ("ringing", "answer"): ("on_call", ("reset_misses", "count_call")),
        ("ringing", "no_answer"): ("available", ("miss",)),
        ("ringing", "auto_break"): ("break", ("miss", "set_reason")),
        ("ringing", "release"): ("available", ()),  # the caller hung up while it rang
        ("on_call", "hang_up"): ("wrap_up", ("start_wrap_up",)),
        ("wrap_up", "wrap_up_done"): ("available", ("stop_wrap_up", "idle")),
        ("wrap_up", "break"): ("break", ("stop_wrap_up", "set_reason")),
        ("wrap_up", "logout"): ("logged_out", ("stop_wrap_up",)),
        ("break", "resume"): ("available", ("clear_reason", "idle", "reset_misses")),
        ("break", "logout"): ("logged_out", ("clear_reason",)),
    }  # fmt: skip

    __slots__ = (
        "_timer",
        "calls_handled",
        "clock",
        "group",
        "idle_since",
        "listener",
        "misses",
        "name",
        "reason",
        "since",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        clock: Clock,
        listener: Callable[[OperatorState, str], None] | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        #: Called with the machine and the event after every transition.
        self.listener = listener
        self.state = self.INITIAL
        #: When the current state began.
        self.since = clock.seconds()
        self.idle_since = self.since
        self.calls_handled = 0
        #: Offers unanswered in a row.
        self.misses = 0
        #: Why the operator is on break (None in every other state).
        self.reason: str | None = None
        #: The group of the call reserved, rung or handled last (its wrap-up, its auto-break).
        self.group: Group | None = None
        self._timer: Any = None

    def fire(self, event: str, arg: Any = None) -> None:
        """Apply ``event`` (``break`` takes a reason, ``reserve`` the Group), or RefusedError."""
        if event == "break" and (not isinstance(arg, str) or not arg):
            raise ValueError(f"a break needs a reason, not {arg!r}")
        if event == "reserve" and not isinstance(arg, Group):
            raise TypeError(f"reserve needs the Group of the call, not {arg!r}")
        if event == "no_answer" and self.state == "ringing" and self.group is not None:
            limit = self.group.auto_break_after
            if limit and self.misses + 1 >= limit:
                event, arg = "auto_break", AUTO_BREAK_REASON
        if not self.handle(event, arg):
            raise RefusedError(self.name, self.state, event)
        self.since = self.clock.seconds()
        if self.listener is not None:
            self.listener(self, event)

    # -- actions (the TABLE's names) ------------------------------------------------

    def _idle(self, _: Any) -> None:
        self.idle_since = self.clock.seconds()

    def _reset_misses(self, _: Any) -> None:
        self.misses = 0

    def _miss(self, _: Any) -> None:
        self.misses += 1

    def _count_call(self, _: Any) -> None:
        self.calls_handled += 1

    def _set_reason(self, reason: str) -> None:
        self.reason = reason

    def _clear_reason(self, _: Any) -> None:
        self.reason = None

    def _set_group(self, group: Group) -> None:
        self.group = group

    def _start_wrap_up(self, _: Any) -> None:
        assert self.group is not None  # on_call is reached through reserve only
        self._timer = self.clock.callLater(self.group.wrap_up, self.fire, "wrap_up_done")

    def _stop_wrap_up(self, _: Any) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
