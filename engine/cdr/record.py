"""One call detail record: a leg of a call, as billing needs it.

A call is the caller's inbound leg (leg 0, answered or refused by the
engine) and each outgoing leg the routing tree's failover chain places
(legs 1, 2, ...). Every leg gets one record (requirements.md, "Numbers and
traffic": every leg is recorded for billing); all the legs of one call share
its ``call_id``. The field names are the contract's (contract.md,
``vms cdr export``), then the extras; the export writes them in that order.

Times are UNIX seconds (floats), ``None`` until they happen. A record is
*open* while ``end`` is ``None``; it is *closed* once ``end`` and ``outcome``
are set, and :meth:`LegRecord.finish` is the one way to close it.

Outcomes (:data:`OUTCOMES`), from the point of view of the leg. INVITEs the
engine refuses before they become calls (unknown numbers, non-peers, flood
limits, overload) are not calls and leave no record; they are counted by
the SIP stack and the flood guard instead.

============== ==========================================================
``answered``   the leg was answered (200 OK); ``duration`` > 0 is billed
``busy``       486/600 (or the tree's busy rule) before any answer
``no_answer``  rang (or not) until the ring timeout, or 408/480 from the far end
``unreachable`` no response, a transport error, 404/5xx from the trunk
``overflow``   not placed: ``max_calls`` calls already on the destination
``cancelled``  the caller hung up before this leg was answered
``rejected``   refused on purpose (a tree's ``reject``, or the callee's own 603/403 ...)
``failed``     anything else, including a leg closed by crash recovery
============== ==========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CONTRACT_FIELDS",
    "EXTRA_FIELDS",
    "FIELDS",
    "OUTCOMES",
    "LegRecord",
]

OUTCOMES: tuple[str, ...] = (
    "answered",
    "busy",
    "no_answer",
    "unreachable",
    "overflow",
    "cancelled",
    "rejected",
    "failed",
)

#: The fields contract.md requires of ``vms cdr export``, in its order.
CONTRACT_FIELDS: tuple[str, ...] = (
    "call_id", "leg", "customer", "caller", "called", "destination", "route", "outcome",
    "start", "answer", "end", "duration", "sip_code", "billed_to",
)  # fmt: skip
#: What this implementation adds after them.
EXTRA_FIELDS: tuple[str, ...] = (
    "ringing", "action_path", "other_operator", "reason", "sip_call_id", "peer",
)  # fmt: skip
#: Every field, in export order (the CSV header, the JSONL keys).
FIELDS: tuple[str, ...] = CONTRACT_FIELDS + EXTRA_FIELDS
#: Fields holding UNIX times (exported as ISO 8601 UTC).
TIME_FIELDS: frozenset[str] = frozenset({"start", "ringing", "answer", "end"})

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_OUTCOME_SET = frozenset(OUTCOMES)


@dataclass(slots=True, eq=True)
class LegRecord:
    """One leg of one call, as stored and exported.

    ``call_id`` is the VMS call identifier (the call controller makes it;
    every leg of the call carries it), ``leg`` 0 for the caller's leg and 1,
    2, ... for outgoing legs in the order they are placed. ``caller`` is
    E.164 or ``None`` (anonymous); ``called`` is the E.164 number the caller
    dialled (the customer's geographic number; the same on every leg);
    ``destination`` the number this leg was placed to (``None`` on leg 0).
    ``route`` is the tree rule's name and ``action_path`` the failover path
    inside it (``""`` for the rule's first action, ``on_no_answer.on_busy``
    for the busy branch of its no-answer branch). ``billed_to`` (see
    :mod:`engine.cdr.billing`) is the holder of ``called`` on rerouted legs,
    ``None`` on leg 0; ``other_operator`` marks legs to another operator's
    numbers, billed separately. ``duration`` is the answered seconds (0 when
    never answered). ``sip_code`` the final SIP status of the leg,
    ``reason`` free text for a person, ``sip_call_id`` the SIP Call-ID of
    this leg's dialog and ``peer`` the far end's ``host:port``.
    """

    call_id: str
    leg: int
    customer: str | None
    caller: str | None
    called: str
    start: float
    destination: str | None = None
    route: str | None = None
    action_path: str = ""
    outcome: str | None = None
    ringing: float | None = None
    answer: float | None = None
    end: float | None = None
    duration: float = 0.0
    sip_code: int | None = None
    billed_to: str | None = None
    other_operator: bool = False
    reason: str | None = None
    sip_call_id: str | None = None
    peer: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def closed(self) -> bool:
        return self.end is not None

    def finish(
        self, end: float, outcome: str, sip_code: int | None = None, reason: str | None = None
    ) -> LegRecord:
        """Close the leg at ``end`` with ``outcome``; ``duration`` follows from ``answer``."""
        self.end = end
        self.outcome = outcome
        if sip_code is not None:
            self.sip_code = sip_code
        if reason is not None:
            self.reason = reason
        self.duration = max(0.0, end - self.answer) if self.answer is not None else 0.0
        self.validate()
        return self

    def validate(self) -> None:
        """Raise ValueError saying what is inconsistent (a bug in the caller, not bad input)."""
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"call detail record {self.call_id!r} leg {self.leg}: {problem}")

    def _problem(self) -> str | None:
        if not self.call_id:
            return "call_id is empty"
        if self.leg < 0:
            return "leg must be 0 (the caller's) or more"
        if self.caller is not None and _E164.fullmatch(self.caller) is None:
            return f"caller {self.caller!r} is not E.164 (None for anonymous)"
        if _E164.fullmatch(self.called) is None:
            return f"called {self.called!r} is not E.164"
        if self.outcome is not None and self.outcome not in _OUTCOME_SET:
            return f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}"
        if (self.outcome is None) != (self.end is None):
            return "outcome and end are set together, when the leg ends"
        start = self.start
        for name, value in (("ringing", self.ringing), ("answer", self.answer),
                            ("end", self.end)):  # fmt: skip
            if value is not None and value < start:
                return f"{name} ({value}) is before start ({start})"
        if self.answer is not None and self.end is not None and self.end < self.answer:
            return "end is before answer"
        if self.duration < 0 or (self.answer is None and self.duration != 0):
            return "duration is the answered seconds (0 when never answered)"
        if self.outcome == "answered" and self.answer is None:
            return "an answered leg needs its answer time"
        if self.sip_code is not None and not 100 <= self.sip_code <= 699:
            return f"sip_code {self.sip_code} is not a SIP status (100-699)"
        if self.leg == 0 and self.billed_to is not None:
            return "billed_to is for rerouted legs; leg 0 is the caller's"
        return None
