"""Who pays for a leg: the billing rules of requirements.md, as pure functions.

"Rerouting costs are billed to the holders of the geographic numbers where
the traffic was first routed; calls rerouted to another operator's numbers
are billed separately. So every leg is recorded for billing."
(requirements.md, "Numbers and traffic")

Read for the call records:

- Leg 0, the caller's leg into the engine, is the caller's own call to a
  geographic number: the caller's operator bills it, the VMS does not.
  ``billed_to`` is ``None``.
- Every outgoing leg (1, 2, ...) is a reroute of that traffic: the tree
  sends the call from the number it was first routed to (``called``) to a
  destination. Its cost goes to the *holder* of ``called``: the customer
  whose number it is (:func:`billed_to`). Failover legs that never connect
  are recorded too (``duration`` 0); billing decides what an attempt costs.
- A leg whose destination is another operator's number is still billed to
  that holder, but on its own line: :func:`other_operator` sets the leg's
  ``other_operator`` flag from the configured prefixes
  (``billing: {other_operator_prefixes: ["+3247", ...]}``), and billing
  keeps those legs apart.

Numbers of affiliated legal entities may be served under one customer
(requirements.md); until numbers carry their own holder, the holder is the
customer that serves ``called``.
"""

from __future__ import annotations

from engine.cdr.record import LegRecord

__all__ = ["billed_to", "other_operator", "stamp"]


def other_operator(number: str | None, prefixes: tuple[str, ...]) -> bool:
    """True when ``number`` (E.164) starts with one of the E.164 ``prefixes``.

    ``None`` (no number, e.g. an announcement) is never another operator's.
    An empty tuple of prefixes means every number is our own network's.
    """
    return number is not None and bool(prefixes) and number.startswith(prefixes)


def billed_to(leg: int, holder: str | None) -> str | None:
    """Who a leg is billed to: ``holder`` (of the called number) for rerouted legs.

    ``leg`` 0 (the caller's leg) is billed by the caller's operator, not here:
    ``None``. Every other leg reroutes traffic first routed to the called
    geographic number, so its holder pays.
    """
    return None if leg == 0 else holder


def stamp(record: LegRecord, holder: str | None, prefixes: tuple[str, ...]) -> LegRecord:
    """Set ``billed_to`` and ``other_operator`` on a record from the rules above."""
    record.billed_to = billed_to(record.leg, holder)
    record.other_operator = record.leg != 0 and other_operator(record.destination, prefixes)
    return record
