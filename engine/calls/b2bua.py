"""B2BUA mode: the transaction user that turns each INVITE into a Call.

New INVITEs are checked against the flood limits, routed by the trees and
handed to a new :class:`~engine.calls.call.Call`; requests inside a dialog
(a To tag) go to the leg whose dialog they belong to, found by Call-ID and
our tag (481 when there is none); the ACK of a 2xx, a CANCEL and 2xx
retransmissions that outlive their transaction are routed the same way.
"""

from __future__ import annotations

import logging
import random
import secrets
from typing import TYPE_CHECKING, Any, Protocol

from engine.calls.call import Call, Plan
from engine.calls.context import CallContext
from engine.calls.dialog import Dialog
from engine.calls.inbound import InboundLeg
from engine.calls.outbound import OutboundLeg
from engine.router import Router, called_number, caller_number
from engine.sip.headers import parse_address
from engine.sip.message import Request, Response
from engine.sip.transaction import ServerInvite, ServerNonInvite, Transport
from engine.sip.validate import Policy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from engine.calls.registrar import Registrar

__all__ = ["B2bua"]

log = logging.getLogger(__name__)

ServerTxn = ServerInvite | ServerNonInvite
Leg = InboundLeg | OutboundLeg

ALLOWED = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "PRACK", "UPDATE", "INFO",
                     "MESSAGE", "NOTIFY"})  # fmt: skip


class Floods(Protocol):
    """The flood limits (``engine.floods.FloodGuard``)."""

    def admit(self, called: str | None, customer: str | None, source_ip: str) -> Any: ...


class B2bua:
    """The transaction user of B2BUA mode."""

    policy = Policy(allowed=ALLOWED, supported=frozenset({"100rel", "timer"}))

    def __init__(
        self, ctx: CallContext, router: Router, floods: Floods | None = None,
        rng: random.Random | None = None, registrar: Registrar | None = None,
    ) -> None:  # fmt: skip
        self.ctx = ctx
        #: Answers REGISTER (operators' softphones) when some customer has softphones.
        self.registrar = registrar
        if registrar is not None:
            self.policy = Policy(allowed=ALLOWED | {"REGISTER"}, supported=self.policy.supported)
        self.router = router
        self.floods = floods
        self.rng = rng or random.Random()
        self.calls: dict[str, Call] = {}
        self.by_invite: dict[ServerInvite, Call] = {}
        self.dialogs: dict[tuple[str, str], Leg] = {}
        self.calls_started = 0

    # -- dialogs -------------------------------------------------------------------

    def register_dialog(self, dialog: Dialog, leg: Leg) -> None:
        self.dialogs[(dialog.call_id, dialog.local_tag)] = leg

    def forget_dialog(self, dialog: Dialog) -> None:
        key = (dialog.call_id, dialog.local_tag)
        leg = self.dialogs.get(key)
        if leg is not None and leg.dialog is dialog:
            del self.dialogs[key]

    def _leg_of(self, message: Request | Response, ours: str) -> Leg | None:
        """The leg of a message whose ``ours`` header (to/from) carries our tag."""
        try:
            tag = parse_address(message.headers[ours][0]).tag
        except (ValueError, KeyError, IndexError):
            return None
        if tag is None:
            return None
        return self.dialogs.get((message.headers["call-id"][0], tag))

    def active_calls(self) -> Iterator[Call]:
        return iter(list(self.calls.values()))

    # -- the transaction user ---------------------------------------------------------

    def request_received(self, txn: ServerTxn, request: Request) -> None:
        if request.to_address().tag is not None:
            leg = self._leg_of(request, "to")
            if leg is None:
                txn.respond(request.response(481, None, self.ctx.stack.to_tag(txn)))
            else:
                leg.in_dialog(txn, request)
            return
        method = request.method
        if method == "INVITE":
            assert isinstance(txn, ServerInvite)
            self._new_call(txn, request)
        elif method == "OPTIONS":
            response = request.response(200, None, self.ctx.stack.to_tag(txn))
            response.headers["allow"] = [self.policy.allow_header]
            response.headers["accept"] = ["application/sdp"]
            response.headers["supported"] = ["100rel, timer"]
            txn.respond(response)
        elif method == "REGISTER" and self.registrar is not None:
            assert isinstance(txn, ServerNonInvite)
            self.registrar.register(txn, request, self.ctx.stack.to_tag(txn))
        else:  # BYE, PRACK, UPDATE ... only make sense inside a dialog
            txn.respond(request.response(481, None, self.ctx.stack.to_tag(txn)))

    def _new_call(self, txn: ServerInvite, request: Request) -> None:
        stack = self.ctx.stack
        called = called_number(request)
        service = self._service(called)
        if self.floods is not None:
            # Before the tree runs, and for unknown numbers too: a source spraying
            # random numbers is held to its limit, and a refused call costs no evaluation.
            number, customer = self._bucket(called, service)
            refusal = self.floods.admit(number, customer, txn.addr[0])
            if refusal is not None:
                txn.respond(refusal.response(request, stack.to_tag(txn)))
                return
        plan = self._plan(request, called, service)
        if plan is None:
            txn.respond(request.response(404, None, stack.to_tag(txn)))
            return
        # Time-ordered (milliseconds first), so the records' unique index grows at its end.
        call_id = f"{int(stack.clock.seconds() * 1000):012x}{secrets.token_hex(6)}"
        call = Call(self, txn, request, txn.addr, plan, call_id)
        self.calls[call_id] = call
        self.by_invite[txn] = call
        self.calls_started += 1
        call.start()

    def _service(self, called: str | None) -> tuple[str, str] | None:
        """The engine's own service a number reaches, with its customer ("" for DRS), or None."""
        if called is None:
            return None
        drs = self.ctx.drs
        if drs is not None and called == drs.service_number:
            return "drs", ""
        phone = self.ctx.acm.phone if self.ctx.acm is not None else None
        customer = phone.numbers.get(called) if phone is not None else None
        return None if customer is None else ("operator", customer)

    def _bucket(
        self, called: str | None, service: tuple[str, str] | None
    ) -> tuple[str | None, str | None]:
        """The number and customer whose flood bucket a call takes (a lookup, no evaluation).

        A number nothing serves has no bucket (None): random numbers would
        otherwise fill the table and push out the buckets of real ones.
        """
        if service is not None:
            return called, service[1] or None
        tree = self.router.trees.lookup(called) if called is not None else None
        return (None, None) if tree is None else (called, tree.customer)

    def _plan(
        self, request: Request, called: str | None, service: tuple[str, str] | None
    ) -> Plan | None:
        """What to do with a new call: the engine's own service first, else its tree's decision."""
        if called is not None and service is not None:
            kind, customer = service
            rule = "drs-service" if kind == "drs" else "acm-feature"
            return Plan(caller_number(request), called, customer, rule, None, kind)
        route = self.router.route_to(request, called, self.ctx.stack.clock.seconds())
        return None if route is None else Plan.of(route)

    def call_ended(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        self.by_invite.pop(call.inbound.txn, None)
        if not call.dismantling:  # after the leg actions under way have run
            call.dismantling = True
            self.ctx.stack.timers.call_later(0.0, call.dismantle)

    def ack_received(self, request: Request, transport: Transport, source: tuple[str, int]) -> None:
        leg = self._leg_of(request, "to")
        if isinstance(leg, InboundLeg):
            leg.ack(request)
        elif isinstance(leg, OutboundLeg):
            leg.call.acked(leg, request)  # the callee acknowledges a re-INVITE it sent

    def cancel_received(self, txn: ServerInvite) -> None:
        call = self.by_invite.get(txn)
        if call is not None:
            call.inbound.cancelled()
        else:
            txn.respond(txn.request.response(487, None, self.ctx.stack.to_tag(txn)))

    def server_failed(self, txn: ServerTxn, reason: str) -> None:
        """A final response the peer never acknowledged: the call's own timers end it."""

    def stray_response(
        self, response: Response, transport: Transport, source: tuple[str, int]
    ) -> None:
        if 200 <= response.status < 300:
            leg = self._leg_of(response, "from")
            if isinstance(leg, OutboundLeg):
                leg.stray_2xx(response)

    # -- shutting down ----------------------------------------------------------------

    def hang_up_all(self, reason: str) -> int:
        """End every call (on shutdown); returns how many there were."""
        calls = list(self.calls.values())
        for call in calls:
            call.hang_up(reason)
            if call.media is not None:
                call.media.close()  # the reactor stops before the BYEs complete: finish files now
        return len(calls)
