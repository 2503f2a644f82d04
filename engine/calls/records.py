"""The call detail records of one call: leg 0 for the caller, one per outgoing leg.

The call reports what happens (started, ringing, answered, failed, ended)
and this turns it into ``LegRecord``s for the store: written when a leg
starts, so a crash leaves an open record the next start closes as failed,
and again when it ends. Billing fields follow ``engine.cdr.billing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.cdr.billing import stamp
from engine.cdr.record import LegRecord

if TYPE_CHECKING:
    from engine.calls.call import Call
    from engine.calls.outbound import OutboundLeg

__all__ = ["CallRecords"]


class CallRecords:
    """Builds and updates the records of one call."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.caller_record: LegRecord | None = None
        self.legs: dict[int, LegRecord] = {}
        self.ends: dict[int, tuple[str | None, int | None, str | None]] = {}

    def _new(self, leg: int, destination: str | None, path: str) -> LegRecord:
        call = self.call
        record = LegRecord(
            call_id=call.call_id, leg=leg, customer=call.customer, caller=call.caller,
            called=call.called, start=call.ctx.now(), destination=destination,
            route=call.plan.rule, action_path=path,
        )  # fmt: skip
        return stamp(record, call.customer, call.ctx.billing_prefixes)

    def _store(self, record: LegRecord, event: str) -> None:
        store = self.call.ctx.records
        if store is not None:
            getattr(store, event)(record)

    # -- the caller's leg ---------------------------------------------------------

    def caller_started(self) -> None:
        record = self._new(0, None, "")
        inbound = self.call.inbound
        record.sip_call_id = inbound.invite.headers["call-id"][0]
        record.peer = f"{inbound.source[0]}:{inbound.source[1]}"
        self.caller_record = record
        self._store(record, "leg_started")

    def caller_ended(self) -> None:
        record = self.caller_record
        if record is None or record.closed:
            return
        final = self.call.inbound.last_final
        status = final.status if final is not None else None
        outcome = self.call.outcome or ("answered" if record.answer else "failed")
        if outcome == "answered" and record.answer is None:
            outcome = "failed"
        record.finish(self.call.ctx.now(), outcome, status)
        self._store(record, "leg_ended")

    def caller_answered(self) -> None:
        """The engine itself answered the caller (an announcement, a menu)."""
        record = self.caller_record
        if record is not None and record.answer is None:
            record.answer = self.call.ctx.now()
            record.sip_code = 200
            self._store(record, "leg_updated")

    # -- outgoing legs -------------------------------------------------------------

    def leg_started(self, leg: OutboundLeg) -> None:
        record = self._new(leg.index, leg.destination, leg.path)
        if leg.invite is not None:
            record.sip_call_id = leg.invite.headers["call-id"][0]
        trunk = self.call.ctx.trunk
        record.peer = f"{trunk[0]}:{trunk[1]}"
        self.legs[leg.index] = record
        self._store(record, "leg_started")

    def leg_refused(self, leg: OutboundLeg, outcome: str, reason: str) -> None:
        """A leg the engine did not place (site down, max_calls): recorded as it ends."""
        record = self._new(leg.index, leg.destination, leg.path)
        self.legs[leg.index] = record
        record.finish(record.start, outcome, None, reason)
        self._store(record, "leg_started")
        self._store(record, "leg_ended")

    def leg_ringing(self, leg: OutboundLeg) -> None:
        now = self.call.ctx.now()
        for record in (self.legs.get(leg.index), self.caller_record):
            if record is not None and record.ringing is None:
                record.ringing = now
                self._store(record, "leg_updated")

    def leg_answered(self, leg: OutboundLeg) -> None:
        """Stored at once, so a crash during the call still bills what was talked."""
        now = self.call.ctx.now()
        record = self.legs.get(leg.index)
        if record is not None:
            record.answer = now
            record.sip_code = 200
            self._store(record, "leg_updated")
        if self.caller_record is not None and leg is self.call.current:
            self.caller_record.answer = now
            self.caller_record.sip_code = 200
            self._store(self.caller_record, "leg_updated")

    def leg_failed(self, leg: OutboundLeg, outcome: str | None, status: int | None,
                   reason: str | None) -> None:  # fmt: skip
        self.ends[leg.index] = (outcome or "rejected", status, reason)

    def leg_ended(self, leg: OutboundLeg) -> None:
        record = self.legs.get(leg.index)
        if record is None or record.closed:
            return
        outcome, status, reason = self.ends.get(leg.index, (None, None, None))
        if status is None and leg.final is not None:
            status = leg.final.status
        if record.answer is not None:
            outcome = "answered"
        record.finish(self.call.ctx.now(), outcome or "failed", status, reason)
        self._store(record, "leg_ended")
