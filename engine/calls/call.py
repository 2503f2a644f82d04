"""One call through the B2BUA: the caller's leg, the tree's actions, the outgoing legs.

The call carries out the Decision the routing tree made: a ``forward``
places an outgoing leg; its dynamic outcome (busy, no answer, unreachable,
overflow) runs the action the tree gives for it, chains of any depth, under
one ring-time limit for the whole call; an outcome with no handler ends the
call with the matching final response (``outcomes.final_for``). Provisional
responses and the answer are relayed to the caller, the ACK to the callee,
and requests inside the dialogs (re-INVITE, UPDATE, INFO ...) cross from one
side to the other with their bodies untouched. Either side's BYE ends both.
Every leg leaves a call detail record.

A call whose rule has an ``announce`` or ``menu`` anywhere in its action,
or whose customer's calls are recorded, anchors its media in the engine
from the start (``engine.calls.media``), so the caller sees one SDP, ours,
whatever branch runs. The caller is answered with it (an announcement whose
``then`` is a forward plays as early media, in a 183, so the caller is not
charged for it), every callee is dialled with the engine's offer and
bridged when it answers, and while a callee rings behind a call the engine
answered, the engine plays the ringing tone. With media anchored,
re-INVITEs and UPDATEs are answered by the engine instead of relayed, and an
outcome with no handler after the caller was answered ends with a BYE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.calls.dialog import Dialog
from engine.calls.drs import DrsRun
from engine.calls.inbound import InboundLeg
from engine.calls.media import CallMedia, MediaUnavailableError
from engine.calls.menu import MenuRun
from engine.calls.operator_phone import OperatorPhoneRun
from engine.calls.outbound import OutboundLeg
from engine.calls.outcomes import NO_ANSWER, OVERFLOW, UNREACHABLE, classify, final_for
from engine.calls.queue import QueueRun
from engine.calls.records import CallRecords
from engine.calls.session import CALLEE, CALLER, SessionTimers, refresh_request
from engine.sip.grammar import is_ip_address
from engine.sip.message import Request, Response
from engine.sip.timers import Timer
from engine.sip.transaction import (
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
    Transaction,
    Transport,
)
from media.dtmf import format_dtmf_relay, parse_dtmf_relay
from media.sdp import SdpError
from routing_trees.model import Action, Announce, Forward, Menu, Queue, Reject, Split, walk

if TYPE_CHECKING:
    from engine.calls.b2bua import B2bua
    from engine.router import Route
    from engine.sip.stack import SipStack

__all__ = ["Call", "Plan"]

log = logging.getLogger(__name__)

ServerTxn = ServerInvite | ServerNonInvite
ClientTransaction = ClientInvite | ClientNonInvite
Leg = InboundLeg | OutboundLeg
#: What a cancelled leg's record says about why.
_REASONS = {NO_ANSWER: "ring timeout", "ring_limit": "ring time limit of the call",
            "cancelled": "cancelled by the caller"}  # fmt: skip
_ANSWERED = ("answered", "confirmed")


#: _needs_media's answers by action id; the action is kept with its answer, so while it is
#: here no other object can take its id.
_media_of: dict[int, tuple[Action, bool]] = {}


def _needs_media(action: Action | None) -> bool:
    """Whether the engine may have to play or listen somewhere in this action tree.

    Asked on every INVITE of the same few rules' actions: walked once each.
    """
    if action is None:
        return False
    known = _media_of.get(id(action))
    if known is not None:
        return known[1]
    if len(_media_of) >= 4096:  # trees reloaded many times: forget the old actions
        _media_of.clear()
    needs = any(isinstance(a, Announce | Menu | Queue) for _, a in walk(action))
    _media_of[id(action)] = (action, needs)
    return needs


class Plan(NamedTuple):
    """What a call is to carry out: who calls whom, for which customer, by which rule's action.

    A tree's decision for calls to a customer's number; the engine's own
    service for calls to a service number (``drs``: DRS activation,
    ``operator``: an ACM feature number), with ``service`` set and no action.
    """

    caller: str | None
    called: str
    customer: str
    rule: str | None
    action: Action | None
    service: str | None = None

    @classmethod
    def of(cls, route: Route) -> Plan:
        decision = route.decision
        return cls(route.facts.caller, route.facts.called, route.tree.customer, decision.rule,
                   decision.action)  # fmt: skip


class Call:
    """The controller of one inbound call."""

    def __init__(
        self, b2bua: B2bua, txn: ServerInvite, invite: Request, source: tuple[str, int],
        plan: Plan, call_id: str,
    ) -> None:  # fmt: skip
        self.b2bua = b2bua
        self.ctx = b2bua.ctx
        self.call_id = call_id
        self.plan = plan
        self.caller = plan.caller
        self.called = plan.called
        self.customer = plan.customer
        self.started = self.ctx.now()
        self.ring_deadline = self.started + self.ctx.settings.max_ring_time
        self.inbound = InboundLeg(self, txn, invite, source)
        self.legs: list[OutboundLeg] = []  # the legs dialled
        self.placed = 0  # legs the tree asked for, dialled or refused (site down, overflow)
        self.current: OutboundLeg | None = None  # the leg ringing now
        self.bridged: OutboundLeg | None = None  # the leg that answered
        self.outcome: str | None = None  # how the caller's leg ends, for its record
        self.session = SessionTimers(self)
        self.records = CallRecords(self)
        self.pending_reinvite: tuple[Leg, ServerTxn] | None = None
        # A relayed re-INVITE without SDP: its 2xx carried the offer, so our ACK to
        # that side waits for the originator's, which carries the answer (§13.2.2.4).
        self.pending_ack: tuple[Leg, int, Dialog, int, Transport] | None = None
        self.reinvite_guard: Timer | None = None  # CANCELs a relayed re-INVITE left ringing
        # The session description last sent to each side after the call's set-up (relayed
        # re-INVITE/UPDATE offers and answers): a session refresh repeats it (RFC 3264 §8).
        self.sdp_sent: dict[str, bytes] = {}
        self.ended = False
        self.media: CallMedia | None = None  # once the engine is a media endpoint
        self.menu: MenuRun | None = None
        self.service: DrsRun | OperatorPhoneRun | None = None  # the engine's own service
        self.queue: QueueRun | None = None  # waiting for an ACM operator
        # The ACM operator who answered: name, when, and the leg to them.
        self.operator: tuple[str, float, OutboundLeg] | None = None
        self.dismantling = False  # over: its reference cycles are about to be broken

    # -- the tree's actions ---------------------------------------------------------

    def start(self) -> None:
        self.records.caller_started()
        self.b2bua.register_dialog(self.inbound.dialog, self.inbound)
        min_se = self.session.too_small(self.inbound.invite)
        if min_se is not None:
            self.outcome = "rejected"
            self.inbound.reject(422, None, (("min-se", str(min_se)),))
            return
        if self.plan.service is not None:
            self._serve()
            return
        action = self.plan.action
        services = self.ctx.media
        anchor = services is not None and (self.customer in services.recorded
                                           or _needs_media(action))  # fmt: skip
        if anchor and self._anchor() is None:
            return
        self.execute(action, "")

    def execute(self, action: Action | None, path: str) -> None:
        while isinstance(action, Split):
            chosen = action.choose(self.b2bua.rng.randrange(100))
            index = next(i for i, (_, a) in enumerate(action.branches) if a is chosen)
            path = f"{path}.split[{index}]" if path else f"split[{index}]"
            action = chosen
        if action is None:
            self._end_with("rejected", 480, "No Rule Matched")
        elif isinstance(action, Reject):
            self._end_with("rejected", action.code, None)
        elif isinstance(action, Forward):
            self._place(action, path)
        elif isinstance(action, Announce):
            self._announce(action, path)
        elif isinstance(action, Menu):
            self._menu(action, path)
        else:
            self._queue(action, path)

    # -- media actions ------------------------------------------------------------------

    def _anchor(self) -> CallMedia | None:
        """The call's media in the engine, anchored on first need; None if it cannot be."""
        if self.media is not None:
            return self.media
        services = self.ctx.media
        if services is None:
            self._end_with("failed", 480, "Media Not Available")
            return None
        try:
            media = CallMedia(self, services)
        except MediaUnavailableError as exc:
            log.error("call %s: cannot anchor media: %s", self.call_id, exc)
            self._end_with("failed", 503, "Media Ports Exhausted")
            return None
        self.media = media
        try:
            media.answer_caller(self.inbound.invite.body)
        except SdpError as exc:
            self._end_with("rejected", 488, None)
            log.info("call %s: no usable media in the offer: %s", self.call_id, exc)
            return None
        return media

    def _to_caller(self, status: int) -> None:
        """Our SDP to the caller: 183 (early media) or 200, unless it has it already."""
        assert self.media is not None
        state = self.inbound.state
        if state in _ANSWERED or (status == 183 and self.media.caller_has_sdp):
            return
        source = Response(status, "", {"content-type": ["application/sdp"]}, self.media.caller_sdp)
        self.media.caller_has_sdp = True
        if status == 183:
            source.reason = "Session Progress"
            self.inbound.ring(source)
        else:
            self.outcome = "answered"
            self.records.caller_answered()
            self.inbound.answer(source)

    def _announce(self, announce: Announce, path: str) -> None:
        media = self._anchor()
        if media is None:
            return
        # Early media needs the caller's offer: a late offer's answer would come in a PRACK.
        early = (isinstance(announce.then, Forward) and self.inbound.state not in _ANSWERED
                 and bool(self.inbound.invite.body))  # fmt: skip
        self._to_caller(183 if early else 200)

        def played() -> None:
            if announce.then is not None:
                self.execute(announce.then, f"{path}.then" if path else "then")
            else:
                self.hang_up("announcement played")

        if not media.play(announce.prompt_path, played):
            self.hang_up("the announcement's prompt is not loaded")

    def _menu(self, menu: Menu, path: str) -> None:
        media = self._anchor()
        if media is None:
            return
        self._to_caller(200)
        self.menu = MenuRun(self, media, menu, path)
        self.menu.start()

    def _queue(self, queue: Queue, path: str) -> None:
        acm = self.ctx.acm
        settings = acm.desk.settings_of(self.customer) if acm is not None else None
        group = settings.groups.get(queue.group) if settings is not None else None
        if acm is None or settings is None or group is None:  # the group went at a reload
            log.error("call %s: queue %s is not available here", self.call_id, queue.group)
            self._end_with("failed", 480, "Queue Not Available")
            return
        media = self._anchor()
        if media is None:
            return
        self._to_caller(200)
        self.queue = QueueRun(self, media, queue, path, acm.desk, group, settings.operators,
                              acm.prompts)  # fmt: skip
        self.queue.start()

    def dial_operator(self, forward: Forward, path: str, ring_time: float, offer: bytes,
                      target: tuple[str, tuple[str, int]] | None) -> OutboundLeg:  # fmt: skip
        """A leg offering the call to an ACM operator: rung beside others, the queue decides.

        ``target``: a registered softphone's Contact and address (else the trunk).
        """
        self.placed += 1
        leg = OutboundLeg(self, self.placed, forward, path)
        leg.target = target
        self.legs.append(leg)
        leg.start(ring_time, offer)
        self.records.leg_started(leg)
        return leg

    def _serve(self) -> None:
        """A call to a service number: the engine answers and runs the service itself."""
        media = self._anchor()
        if media is None:
            return
        self._to_caller(200)
        phone = self.ctx.acm.phone if self.ctx.acm is not None else None
        if self.plan.service == "operator" and phone is not None:
            self.service = OperatorPhoneRun(self, media, phone)
        else:
            self.service = DrsRun(self, media)
        self.service.start()

    def menu_gave_up(self, why: str) -> None:
        self.hang_up(f"menu: {why}, no tries left")

    def send_digit_info(self, digit: str) -> None:
        """A caller's key towards a bridged callee that has no telephone-event: SIP INFO."""
        leg = self.bridged or self.current
        if leg is None or leg.dialog is None:
            return
        ctype, body = format_dtmf_relay(digit, 160)
        request = leg.dialog.request("INFO", body, ctype)
        self.send_request_on(leg.dialog, request, None)

    def _place(self, forward: Forward, path: str) -> None:
        now = self.ctx.now()
        if now >= self.ring_deadline:
            self._end_with(NO_ANSWER, 480, "Ring Time Exceeded")
            return
        if self.inbound.state == "trying" and not self.placed:
            self.inbound.trying()
        self.placed += 1
        leg = OutboundLeg(self, self.placed, forward, path)
        self.current = leg
        down = self.ctx.sites.down_site_for(forward.number) if self.ctx.sites else None
        if down is not None:
            self.records.leg_refused(leg, UNREACHABLE, f"site {down} is down")
            self._outcome(leg, UNREACHABLE, None)
            return
        if forward.max_calls is None or self.ctx.state is None:
            self._dial(leg)
            return
        d = self.ctx.state.acquire(f"calls:{forward.number}", forward.max_calls, leg.lease)
        d.addCallback(self._slot, leg)
        d.addErrback(self._slot_failed, leg)

    def _slot(self, granted: bool, leg: OutboundLeg) -> None:
        if self.ended or leg is not self.current:
            if granted:
                self._release(leg)
            return
        if not granted:
            self.records.leg_refused(leg, OVERFLOW, f"max_calls ({leg.forward.max_calls}) reached")
            self._outcome(leg, OVERFLOW, None)
            return
        leg.holds_slot = True
        self._dial(leg)

    def _slot_failed(self, failure: Any, leg: OutboundLeg) -> None:
        log.error("call %s: shared state unavailable (%s); placing the call without max_calls",
                  self.call_id, failure.getErrorMessage())  # fmt: skip
        if not self.ended and leg is self.current:
            self._dial(leg)

    def _dial(self, leg: OutboundLeg) -> None:
        offer = None
        if self.media is not None:
            try:
                offer = self.media.offer_callee()
            except MediaUnavailableError as exc:
                log.error("call %s: no media port for the callee: %s", self.call_id, exc)
                if leg.holds_slot:
                    self._release(leg)
                self._end_with("failed", 503, "Media Ports Exhausted")
                return
        self.legs.append(leg)  # only legs that send an INVITE have a life to end
        remaining = self.ring_deadline - self.ctx.now()
        leg.start(min(float(leg.forward.timeout), remaining), offer)
        self.records.leg_started(leg)

    def _release(self, leg: OutboundLeg) -> None:
        if leg.forward.max_calls is not None and self.ctx.state is not None:
            self.ctx.state.release(f"calls:{leg.forward.number}", leg.lease)

    # -- what the outgoing legs report ------------------------------------------------

    def ring_timeout(self, leg: OutboundLeg) -> None:
        leg.ring_timer = None
        if self.ctx.now() >= self.ring_deadline - 1e-6:
            leg.cancel("ring_limit")
        else:
            leg.cancel(NO_ANSWER)

    def leg_ringing(self, leg: OutboundLeg, response: Response) -> None:
        self.records.leg_ringing(leg)
        if leg is not self.current or self.ended:  # an operator's ringing: the caller holds
            return
        media = self.media
        if media is None:
            self.inbound.carry_sdp_of(leg, response)
            self.inbound.ring(response)
        elif media.callee_sdp(response.body):  # the callee's early media, bridged
            media.bridge(answered=False)
            self._to_caller(183)
        elif media.caller_has_sdp:
            media.ring()  # the caller hears our stream, not its phone: ring it ourselves
        elif self.inbound.state == "trying":
            self.inbound.ring(Response(response.status, response.reason, {}))

    def leg_answered(self, leg: OutboundLeg, response: Response) -> None:
        self.records.leg_answered(leg)
        name = self.queue.owns(leg) if self.queue is not None else None
        if name is not None and self.queue is not None and self.queue.answered(leg):
            self.current = leg  # the operator who answered first takes the call
            self.operator = (name, self.ctx.now(), leg)
        waiting = ("trying", "early", *(_ANSWERED if self.media is not None else ()))
        if leg is not self.current or self.ended or self.inbound.state not in waiting:
            leg.hang_up()  # the caller went away meanwhile
            return
        self.bridged = leg
        self.current = None
        self.session.callee_answered(response)
        if self.media is None:
            self.outcome = "answered"
            self.inbound.carry_sdp_of(leg, response)
            self.inbound.answer(response)
            return
        leg.relay_ack(None)  # we are the callee's UAC for media: our ACK goes at once
        if not self.media.callee_sdp(response.body) and not self.media.callee_configured:
            log.warning("call %s: the callee answered without usable SDP; hanging it up",
                        self.call_id)  # fmt: skip
            self.bridged = None
            leg.hang_up()
            self.media.drop_callee()
            self._end_with("failed", 488, "Not Acceptable Here")
            return
        self.media.bridge(answered=True)
        self._to_caller(200)

    def leg_failed(self, leg: OutboundLeg, status: int | None, reason: str | None) -> None:
        outcome = UNREACHABLE if status is None else classify(status)
        self.records.leg_failed(leg, outcome, status, reason)
        if self.queue is not None:
            self.queue.offer_ended(leg)
        if leg is not self.current or self.ended:
            return
        if self.media is not None:
            self.media.drop_callee()
        if outcome is None:
            assert status is not None
            # The callee's own answer, as it came: a 3xx with its targets.
            self._end_with("rejected", status, reason, leg.redirect_targets())
            return
        self._outcome(leg, outcome, status)

    def leg_cancelled(self, leg: OutboundLeg, why: str) -> None:
        outcome = NO_ANSWER if why in (NO_ANSWER, "ring_limit") else "cancelled"
        status = leg.final.status if leg.final is not None else None  # 487, or no answer at all
        self.records.leg_failed(leg, outcome, status, _REASONS.get(why, why))
        if self.queue is not None:
            self.queue.offer_ended(leg)
        if leg is not self.current or self.ended:
            return
        if self.media is not None:
            self.media.drop_callee()
        if why == "ring_limit":
            self._end_with(NO_ANSWER, 480, "Ring Time Exceeded")
        elif why == NO_ANSWER:
            self._outcome(leg, NO_ANSWER, None)

    def _outcome(self, leg: OutboundLeg, outcome: str, status: int | None) -> None:
        handler = getattr(leg.forward, "on_" + outcome)
        if handler is not None:
            key = "on_" + outcome
            self.execute(handler, f"{leg.path}.{key}" if leg.path else key)
            return
        code, reason = final_for(outcome, status)
        self._end_with(outcome, code, reason)

    def _end_with(self, outcome: str, status: int, reason: str | None,
                  headers: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        self.current = None
        if self.inbound.state in _ANSWERED:  # answered by the engine (announce, menu)
            self.hang_up(f"{outcome} ({status} {reason or ''})".replace(" )", ")"))
            return
        self.outcome = outcome
        self.inbound.reject(status, reason, headers)

    # -- what the caller does --------------------------------------------------------------

    def caller_acked(self, request: Request) -> None:
        if self.media is not None:
            self.media.offer_answered(True, request.body)
            self.media.caller_confirmed()
        elif self.bridged is not None:
            self.bridged.relay_ack(request)

    def caller_cancelled(self) -> None:
        self.outcome = "cancelled"
        if self.current is not None:
            self.current.cancel("cancelled")

    def caller_hung_up(self) -> None:
        self._hang_up_callee()

    def callee_hung_up(self, leg: OutboundLeg) -> None:
        if leg is self.bridged:
            self.inbound.hang_up()

    def caller_gone(self, reason: str) -> None:
        log.warning("call %s: %s; ending it", self.call_id, reason)
        self.outcome = self.outcome if self.outcome == "answered" else "failed"
        self._hang_up_callee()
        self.inbound.hang_up()

    def _hang_up_callee(self) -> None:
        if self.queue is not None:  # no operator is offered a call that is ending
            self.queue.stop("abandoned")
        for leg in (self.bridged, self.current):
            if leg is not None:
                leg.hang_up()

    def hang_up(self, reason: str) -> None:
        """End the call from the engine's side (shutdown, session expiry)."""
        log.info("call %s: ending: %s", self.call_id, reason)
        if self.outcome is None:
            self.outcome = "failed"
        self._hang_up_callee()
        self.inbound.hang_up()

    # -- session timers ---------------------------------------------------------------------

    def session_expired(self, side: str) -> None:
        self.hang_up(f"the {side} stopped refreshing its session (RFC 4028)")

    def refresh_session(self, side: str, interval: int) -> None:
        """Refresh a session we are the refresher of, repeating the SDP we last sent."""
        peer: Request | Response | None
        if side == CALLER:
            dialog, transport = self.inbound.dialog, self.inbound.transport
            peer = self.inbound.invite
            sdp = self.inbound.last_final.body if self.inbound.last_final else b""
        else:
            if self.bridged is None or self.bridged.dialog is None:
                return
            dialog, transport = self.bridged.dialog, self.ctx.transport
            peer = self.bridged.answer or self.bridged.invite
            sdp = self.bridged.invite.body if self.bridged.invite else b""
        sdp = self.sdp_sent.get(side, sdp)
        allow_update = peer is not None and any(m.upper() == "UPDATE" for m in peer.values("allow"))
        request = refresh_request(dialog, allow_update, interval, sdp)
        self._send(
            dialog, request, transport, lambda r: self._refresh_done(side, dialog, request, r)
        )

    def _refresh_done(
        self, side: str, dialog: Dialog, request: Request, response: Response | None
    ) -> None:
        if response is None or response.status >= 300:
            if response is None or response.status in (408, 481):
                self.hang_up(f"the {side} did not accept a session refresh")
            return
        if request.method == "INVITE":
            transport = self.inbound.transport if side == CALLER else self.ctx.transport
            self.send_ack_on(dialog, dialog.ack(request.cseq()[0]), transport=transport)

    # -- requests inside the dialogs ---------------------------------------------------------

    def relay(self, origin: Leg, txn: ServerTxn, request: Request) -> None:
        """A request from one side goes to the other side's dialog; its final answer comes back."""
        if origin is self.inbound:
            target = self.bridged or self.current
            dialog = target.dialog if target is not None else None
            transport = self.ctx.transport
        else:
            dialog, transport = self.inbound.dialog, self.inbound.transport
        tag = origin.dialog.local_tag if origin.dialog is not None else ""
        if self.media is not None and self._media_request(origin, txn, request, tag):
            return
        if dialog is None or self.ended:
            txn.respond(request.response(481, None, tag))
            return
        is_invite = request.method == "INVITE"
        if is_invite and self.pending_reinvite is not None:
            txn.respond(request.response(491, None, tag))  # glare (§14.1)
            return
        out = dialog.request(request.method, request.body, request.get("content-type"))
        for name in ("session-expires", "min-se", "supported", "require", "event",
                     "info-package", "subscription-state", "allow"):  # fmt: skip
            if name in request.headers:
                out.headers[name] = request.headers[name][:]
        if is_invite:
            self.pending_reinvite = (origin, txn)
        side = CALLER if origin is self.inbound else CALLEE

        def answered(response: Response | None) -> None:
            self._relayed(origin, txn, request, dialog, out, transport, response, side)

        sent = self._send(dialog, out, transport, answered, provisional=is_invite)
        if is_invite:  # a peer that rings but never answers must not hold re-INVITEs off (491)
            stack = self.ctx.stack
            self.reinvite_guard = stack.timers.call_later(64 * stack.t1, _cancel_stuck, sent, stack)

    def _relayed(
        self, origin: Leg, txn: ServerTxn, request: Request, dialog: Dialog, out: Request,
        transport: Transport, response: Response | None, side: str,
    ) -> None:  # fmt: skip
        tag = origin.dialog.local_tag if origin.dialog is not None else ""
        pending = self.pending_reinvite
        ours = pending is not None and pending[1] is txn  # not an older one's 2xx again
        if ours and (response is None or response.status >= 200):
            self.pending_reinvite = None
            if self.reinvite_guard is not None:
                self.reinvite_guard.cancel()
                self.reinvite_guard = None
        if response is None:
            txn.respond(request.response(408 if request.method != "BYE" else 481, None, tag))
            return
        if response.status < 200:
            if response.status > 100 and txn.state in ("proceeding", "trying"):
                txn.respond(
                    _copy(response, request.response(response.status, response.reason, tag))
                )
            return
        answer = _copy(response, request.response(response.status, response.reason, tag))
        if response.status < 300 and request.method in ("INVITE", "UPDATE"):
            dialog.refresh_target(response)
            origin_dialog = origin.dialog
            if origin_dialog is not None:
                origin_dialog.refresh_target(request)
            answer.headers["contact"] = [self.ctx.contact]
            self.session.refreshed(side)
            self._note_sdp(CALLEE if side == CALLER else CALLER, out)  # an accepted offer
            self._note_sdp(side, answer)
        txn.respond(answer)
        if request.method == "INVITE" and response.status < 300:
            if request.body:  # the offer went with the INVITE: nothing to wait for
                self.send_ack_on(dialog, dialog.ack(out.cseq()[0]), transport=transport)
            else:
                self.pending_ack = (origin, request.cseq()[0], dialog, out.cseq()[0], transport)

    def _media_request(self, origin: Leg, txn: ServerTxn, request: Request, tag: str) -> bool:
        """With media anchored: answer offers here, take INFO digits; False to relay as usual."""
        assert self.media is not None
        method = request.method
        from_caller = origin is self.inbound
        if method == "INFO" and from_caller and (self.menu is not None or not self.media.bridged):
            info = parse_dtmf_relay(request.get("content-type") or "", request.body)
            if info is None:
                return False
            txn.respond(request.response(200, None, tag))
            self.media.info_digit(info.digit)  # a menu's, or type-ahead for the next one
            return True
        if method not in ("INVITE", "UPDATE"):
            return False
        if not from_caller and self.media.callee is None:
            txn.respond(request.response(481, None, tag))
            return True
        response = request.response(200, None, tag)
        if method == "INVITE" or request.body:  # a bodyless UPDATE is a refresh: no SDP back
            try:
                body = self.media.reoffer(from_caller, request.body)
            except SdpError:
                txn.respond(request.response(488, None, tag))
                return True
            response.headers["content-type"] = ["application/sdp"]
            response.body = body
        response.headers["contact"] = [self.ctx.contact]
        side = CALLER if from_caller else CALLEE
        self.session.answer_refresh(side, request, response)
        self._note_sdp(side, response)
        txn.respond(response)
        return True

    def acked(self, origin: Leg, request: Request) -> None:
        """An ACK inside a dialog: a relayed re-INVITE's, with the answer to carry across."""
        if self.media is not None:  # the answer to the offer of a re-INVITE we answered
            self.media.offer_answered(origin is self.inbound, request.body)
            return
        pending = self.pending_ack
        if pending is None or pending[0] is not origin or pending[1] != request.cseq()[0]:
            return  # a retransmitted ACK, or one for a 2xx we answered ourselves
        self.pending_ack = None
        _, _, dialog, seq, transport = pending
        ctype = request.get("content-type")
        ack = dialog.ack(seq, request.body, ctype)
        self._note_sdp(CALLEE if origin is self.inbound else CALLER, ack)
        self.send_ack_on(dialog, ack, transport=transport)

    def _note_sdp(self, side: str, message: Request | Response) -> None:
        """Remember a session description going to ``side``, for its session refreshes."""
        if message.body and (message.get("content-type") or "").lower().startswith(
            "application/sdp"
        ):
            self.sdp_sent[side] = message.body

    # -- sending --------------------------------------------------------------------------

    def _address(self, dialog: Dialog) -> tuple[str, int]:
        """Where a dialog's requests go; a name we cannot resolve here goes by the peer we know.

        That peer is the dialog's side, not the transport: the caller and the
        trunk usually reach the engine on the same UDP socket, and a caller's
        Contact or Record-Route naming its PBX by host name must not send the
        caller's BYE to the trunk.
        """
        for leg in self.legs:  # a softphone behind a NAT: where its REGISTER came from
            if leg.target is not None and dialog in leg.dialogs.values():
                return leg.target[1]
        host, port = dialog.next_hop()
        if is_ip_address(host):
            return host, port
        if dialog is self.inbound.dialog:
            return self.inbound.source
        return self.ctx.trunk

    def send_in_dialog(self, dialog: Dialog, method: str, transport: Transport,
                       done: Callable[[Response | None], None]) -> None:  # fmt: skip
        self._send(dialog, dialog.request(method), transport, done)

    def send_request_on(self, dialog: Dialog, request: Request,
                        done: Callable[[Response | None], None] | None) -> None:  # fmt: skip
        self._send(dialog, request, self.ctx.transport, done)

    def _send(
        self, dialog: Dialog, request: Request, transport: Transport,
        done: Callable[[Response | None], None] | None, provisional: bool = False,
    ) -> ClientTransaction:  # fmt: skip
        user = _Final(done, provisional)
        return self.ctx.stack.send_request(request, transport, self._address(dialog), user,
                                           self.ctx.local)  # fmt: skip

    def send_ack_on(self, dialog: Dialog, ack: Request, resend: bool = False,
                    transport: Transport | None = None) -> None:  # fmt: skip
        transport = transport or self.ctx.transport
        if resend and "via" in ack.headers:
            transport.send(ack.to_bytes(), self._address(dialog))
            return
        self.ctx.stack.send_ack(ack, transport, self._address(dialog), self.ctx.local)

    # -- bookkeeping -------------------------------------------------------------------------

    def register_dialog(self, dialog: Dialog, leg: Leg) -> None:
        self.b2bua.register_dialog(dialog, leg)

    def leg_finished(self, leg: Leg) -> None:
        if isinstance(leg, OutboundLeg):
            if leg.holds_slot:
                self._release(leg)
            if self.operator is not None and self.operator[2] is leg:
                self._operator_done()
            self.records.leg_ended(leg)
            for dialog in leg.dialogs.values():
                self.b2bua.forget_dialog(dialog)
        else:
            self.ended = True
            if self.current is not None:
                self.current.hang_up()
            if self.menu is not None:
                self.menu.stop()
            if self.service is not None:
                self.service.stop()
            if self.queue is not None:
                self.queue.stop("abandoned")
            if self.media is not None:
                self.media.close()
            self.records.caller_ended()
            self.b2bua.forget_dialog(leg.dialog)
        if self.ended and all(leg.state == "ended" for leg in self.legs):
            self.session.stop()
            self.b2bua.call_ended(self)

    def _operator_done(self) -> None:
        """The ACM operator's leg is over: the desk takes the operator to wrap-up."""
        assert self.operator is not None and self.ctx.acm is not None
        name, answered, _leg = self.operator
        self.operator = None
        self.ctx.acm.desk.hung_up(self.customer, name, self.call_id, self.ctx.now() - answered)

    def dismantle(self) -> None:
        """Break the call's reference cycles once every leg has ended.

        Legs, timers and records point back at their call, and a client
        transaction and its leg at each other: left alone, every call would
        stay in memory until the cyclic collector walked it, and that walk
        over a busy engine's live objects stalls it for hundreds of ms.
        Ended legs absorb whatever still reaches them (their tables have no
        rows for it), so nothing follows these references any more.
        """
        for leg in self.legs:
            leg.invite_txn = None
            del leg.call
        del self.inbound.call
        del self.session.call
        del self.records.call
        if self.media is not None:
            self.media.detach()
        self.media = self.menu = self.service = self.queue = None
        self.current = self.bridged = None
        self.operator = None
        if self.reinvite_guard is not None:  # its transaction's user leads back here
            self.reinvite_guard.cancel()
            self.reinvite_guard = None


def _cancel_stuck(invite: ClientTransaction, stack: SipStack) -> None:
    """RFC 3261 §14.1: a re-INVITE still ringing after 64*T1 is CANCELled.

    Its CANCEL's own guard (§9.1) then ends it for good, and the side that
    sent it hears 408 (or the 487): the call takes re-INVITEs again.
    """
    if isinstance(invite, ClientInvite) and invite.state == "proceeding":
        stack.cancel(invite, _Final(None, False))
        invite.cancel_sent()


class _Final:
    """A client transaction user that reports the final response (or None on failure)."""

    def __init__(self, done: Callable[[Response | None], None] | None, provisional: bool) -> None:
        self.done = done
        self.provisional = provisional
        self.answered = False

    def response_received(self, txn: Transaction, response: Response) -> None:
        if self.done is None:
            return
        if response.status >= 200:
            self.answered = True  # 2xx retransmissions still come: they are ACKed again
            self.done(response)
        elif self.provisional:
            self.done(response)

    def transaction_failed(self, txn: Transaction, reason: str) -> None:
        # After a final answer (an ICMP error in Timer D's wait) there is nothing to fail.
        if self.done is not None and not self.answered:
            self.done(None)


def _copy(source: Response, target: Response) -> Response:
    """A relayed response keeps the body and what it negotiates, not the other side's routing."""
    if source.body:
        target.body = source.body
        target.headers["content-type"] = source.headers.get("content-type", ["application/sdp"])[:]
    for name in ("session-expires", "require", "supported", "allow"):
        if name in source.headers:
            target.headers[name] = source.headers[name][:]
    return target
