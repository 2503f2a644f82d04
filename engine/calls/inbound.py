"""The caller's leg: the B2BUA as UAS, from the INVITE it received to the end of the dialog.

Everything that changes this leg's state is in ``TABLE``. The leg answers
through the INVITE's server transaction; once it has sent a 2xx it
retransmits it until the ACK comes (RFC 3261 §13.3.1.4, RFC 6026: the
transaction no longer does), and ends the call when no ACK comes within
64*T1. A caller that *requires* 100rel gets its provisional responses
reliably (RFC 3262): one at a time, retransmitted until PRACKed, and a 2xx
whose call set up early media waits for that PRACK. Requests the caller
sends inside the dialog reach the call through :meth:`InboundLeg.in_dialog`;
a BYE before the answer ends the early dialog as the caller's CANCEL would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from engine.calls.dialog import Dialog
from engine.sip.message import Request, Response
from engine.sip.timers import Timer
from engine.sip.transaction import ServerInvite, ServerNonInvite, Transport
from engine.tables import Machine, Row

if TYPE_CHECKING:
    from engine.calls.call import Call

__all__ = ["InboundLeg"]

ServerTxn = ServerInvite | ServerNonInvite


class InboundLeg(Machine):
    """The UAS side of one call."""

    INITIAL = "trying"

    __slots__ = (
        "call",
        "dialog",
        "invite",
        "last_final",
        "pending_2xx",
        "queued",
        "reliable",
        "rseq",
        "sdp_from",
        "source",
        "timers",
        "to_tag",
        "transport",
        "txn",
        "unacked_reliable",
    )  # fmt: skip

    def __init__(
        self, call: Call, txn: ServerInvite, invite: Request, source: tuple[str, int]
    ) -> None:
        self.call = call
        self.txn = txn
        self.invite = invite
        self.source = source
        self.transport: Transport = txn.transport
        self.state = self.INITIAL
        ctx = call.ctx
        self.to_tag = ctx.stack.to_tag(txn)
        self.dialog = Dialog.as_uas(invite, self.to_tag, ctx.contact)
        requires = {t.lower() for t in invite.values("require")}
        self.reliable = "100rel" in requires
        self.rseq = 0
        self.unacked_reliable: Response | None = None
        self.queued: list[Response] = []
        self.pending_2xx: Response | None = None
        self.last_final: Response | None = None
        self.timers: dict[str, Timer] = {}
        self.sdp_from: object = None  # the outgoing leg whose SDP this dialog carries

    def carry_sdp_of(self, leg: object, source: Response) -> None:
        """Before relaying ``leg``'s response: one session description per dialog.

        A dialog's answer cannot change before the 2xx (RFC 3261 §13.2.1,
        RFC 6337 §3.1): when a failover leg brings SDP other than the early
        media of a leg that failed, the caller gets it on a new early dialog
        (a fresh To tag), as from another branch of a forking proxy. The
        first dialog is left (its requests get 481). Not while a reliable
        provisional awaits its PRACK: that one keeps the dialog.
        """
        if not source.body:
            return
        if (self.sdp_from is not None and self.sdp_from is not leg and self.state == "early"
                and self.unacked_reliable is None and not self.queued):  # fmt: skip
            self.call.b2bua.forget_dialog(self.dialog)
            ctx = self.call.ctx
            self.to_tag = self.txn.to_tag = ctx.stack.new_tag()
            self.dialog = Dialog.as_uas(self.invite, self.to_tag, ctx.contact)
            self.call.register_dialog(self.dialog, self)
        self.sdp_from = leg

    # -- what the call asks for --------------------------------------------------

    def trying(self) -> None:
        self.txn.respond(self._response(100))

    def ring(self, source: Response) -> None:
        """Relay a provisional response of the outgoing leg (with its SDP)."""
        self.handle("provisional", source)

    def answer(self, source: Response) -> None:
        self.handle("answer", source)

    def reject(self, status: int, reason: str | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        self.handle("reject", (status, reason, headers))

    def hang_up(self) -> None:
        self.handle("hang_up")

    # -- what the caller does ---------------------------------------------------------

    def ack(self, request: Request) -> None:
        self.handle("ack", request)

    def cancelled(self) -> None:
        self.handle("cancel")

    def in_dialog(self, txn: ServerTxn, request: Request) -> None:
        """A request inside the caller's dialog: order check, then by method."""
        if not self.dialog.accepts(request):
            txn.respond(self._reply(request, 500, "Out Of Order CSeq"))
            return
        method = request.method
        if method == "BYE":
            txn.respond(self._reply(request, 200))
            self.handle("bye", request)
        elif method == "PRACK":
            self._prack(txn, request)
        elif method == "OPTIONS":
            txn.respond(self._reply(request, 200))
        else:
            self.call.relay(self, txn, request)

    # -- responses building -----------------------------------------------------------

    def _response(
        self, status: int, reason: str | None = None, source: Response | None = None
    ) -> Response:
        response = self.invite.response(status, reason, self.to_tag)
        if 100 < status < 300:  # it sets up a dialog with us; a 3xx's Contacts are its targets
            response.headers["contact"] = [self.call.ctx.contact]
            if self.dialog.route_set:
                response.headers["record-route"] = self.invite.headers["record-route"][:]
        if source is not None:
            _copy_body(source, response)
        return response

    def _reply(self, request: Request, status: int, reason: str | None = None) -> Response:
        return request.response(status, reason, self.to_tag)

    # -- actions ------------------------------------------------------------------------

    def _send_provisional(self, source: Response) -> None:
        response = self._response(source.status, source.reason, source)
        if self.reliable:
            self.rseq += 1
            response.headers["require"] = ["100rel"]
            response.headers["rseq"] = [str(self.rseq)]
            if self.unacked_reliable is not None:
                self.queued.append(response)
                return
            self._send_reliable(response)
        else:
            self.txn.respond(response)

    def _send_reliable(self, response: Response) -> None:
        self.unacked_reliable = response
        self.txn.respond(response)
        self._schedule("reliable", self.call.ctx.stack.t1, self._retransmit_reliable, response)

    def _retransmit_reliable(self, response: Response, interval: float) -> None:
        if self.unacked_reliable is not response or self.state not in ("trying", "early"):
            return
        if interval > 32 * self.call.ctx.stack.t1:  # 64*T1 since the first: give up (§4)
            self.unacked_reliable = None
            self.call.caller_gone("no PRACK for a reliable provisional response")
            return
        self.txn.respond(response)
        self._schedule("reliable", 2 * interval, self._retransmit_reliable, response)

    def _prack(self, txn: ServerTxn, request: Request) -> None:
        pending = self.unacked_reliable
        rack = (request.get("rack") or "").split()
        if pending is None or not rack or rack[0] != pending.headers["rseq"][0]:
            txn.respond(self._reply(request, 481, "No Matching Provisional Response"))
            return
        txn.respond(self._reply(request, 200))
        self._cancel_timer("reliable")
        self.unacked_reliable = None
        if self.queued:
            self._send_reliable(self.queued.pop(0))
        elif self.pending_2xx is not None:
            response, self.pending_2xx = self.pending_2xx, None
            self._send_final_2xx(response)

    def _send_answer(self, source: Response) -> None:
        response = self._response(200, None, source)
        self.call.session.answer_caller(self.invite, response)
        if self.unacked_reliable is not None and self.unacked_reliable.body:
            self.pending_2xx = response  # RFC 3262 §3: the 2xx waits for that PRACK
            return
        self._send_final_2xx(response)

    def _send_final_2xx(self, response: Response) -> None:
        self.last_final = response
        self.txn.respond(response)
        if not self.transport.reliable:
            self._schedule("2xx", self.call.ctx.stack.t1, self._retransmit_2xx, response)
        self._schedule("ack_wait", 64 * self.call.ctx.stack.t1, self._ack_timeout, None)

    def _retransmit_2xx(self, response: Response, interval: float) -> None:
        if self.state != "answered" or self.txn.state != "accepted":
            return  # acknowledged, or the transaction's own 64*T1 is over
        self.txn.respond(response)  # the Accepted state lets the TU's 2xx through
        stack = self.call.ctx.stack
        self._schedule("2xx", min(2 * interval, stack.t2), self._retransmit_2xx, response)

    def _ack_timeout(self, _arg: Any, _interval: float) -> None:
        self.handle("ack_timeout")

    def _send_reject(self, arg: tuple[int, str | None, tuple[tuple[str, str], ...]]) -> None:
        status, reason, headers = arg
        self.last_final = self._response(status, reason)
        for name, value in headers:  # a name given twice keeps both (a 3xx's Contacts)
            self.last_final.headers.setdefault(name, []).append(value)
        self.txn.respond(self.last_final)

    def _send_487(self, _arg: Any) -> None:
        self.last_final = self._response(487)
        self.txn.respond(self.last_final)

    def _stop_answer_timers(self, _arg: Any) -> None:
        self._cancel_timer("2xx")
        self._cancel_timer("ack_wait")

    def _deliver_ack(self, request: Request) -> None:
        self.call.caller_acked(request)

    def _relay_ack(self, request: Request) -> None:
        self.call.acked(self, request)

    def _notify_bye(self, _request: Request) -> None:
        self.call.caller_hung_up()

    def _notify_ack_timeout(self, _arg: Any) -> None:
        self.call.caller_gone("no ACK for the 2xx (64*T1)")

    def _notify_cancel(self, _arg: Any) -> None:
        self.call.caller_cancelled()

    def _send_bye(self, _arg: Any) -> None:
        self.call.send_in_dialog(self.dialog, "BYE", self.transport, self._bye_done)

    def _bye_done(self, _response: Response | None) -> None:
        self.handle("bye_done")

    def _finish(self, _arg: Any) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.call.leg_finished(self)

    def _noop(self, _arg: Any) -> None:
        """An event to absorb on purpose (named so the table says so)."""

    # -- timers -----------------------------------------------------------------------------

    def _schedule(self, name: str, delay: float, fn: Any, arg: Any) -> None:
        self._cancel_timer(name)
        self.timers[name] = self.call.ctx.stack.timers.call_later(delay, fn, arg, delay)

    def _cancel_timer(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("trying", "provisional"): ("early", ("send_provisional",)),
        ("trying", "answer"): ("answered", ("send_answer",)),
        ("trying", "reject"): ("ended", ("send_reject", "finish")),
        ("trying", "cancel"): ("ended", ("send_487", "notify_cancel", "finish")),
        ("trying", "hang_up"): ("ended", ("send_487", "finish")),
        # A BYE in the early dialog (its 200 went in in_dialog) is the caller's CANCEL (§15.1.2).
        ("trying", "bye"): ("ended", ("send_487", "notify_cancel", "finish")),
        ("early", "provisional"): ("early", ("send_provisional",)),
        ("early", "answer"): ("answered", ("send_answer",)),
        ("early", "reject"): ("ended", ("send_reject", "finish")),
        ("early", "cancel"): ("ended", ("send_487", "notify_cancel", "finish")),
        ("early", "hang_up"): ("ended", ("send_487", "finish")),
        ("early", "bye"): ("ended", ("send_487", "notify_cancel", "finish")),
        ("answered", "ack"): ("confirmed", ("stop_answer_timers", "deliver_ack")),
        ("answered", "ack_timeout"): ("ending", ("stop_answer_timers", "notify_ack_timeout",
                                                  "send_bye")),
        ("answered", "bye"): ("ended", ("stop_answer_timers", "notify_bye", "finish")),
        ("answered", "hang_up"): ("ending", ("stop_answer_timers", "send_bye")),
        ("answered", "cancel"): ("answered", ("noop",)),  # too late: the 2xx stands
        ("confirmed", "ack"): ("confirmed", ("relay_ack",)),  # a re-INVITE's, or a repeat
        ("confirmed", "bye"): ("ended", ("notify_bye", "finish")),
        ("confirmed", "hang_up"): ("ending", ("send_bye",)),
        ("ending", "bye"): ("ending", ("noop",)),  # BYEs crossed: ours still completes
        ("ending", "bye_done"): ("ended", ("finish",)),
    }  # fmt: skip


def _copy_body(source: Response, target: Response) -> None:
    if source.body:
        target.body = source.body
        target.headers["content-type"] = source.headers.get("content-type", ["application/sdp"])[:]
