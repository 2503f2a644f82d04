"""One outgoing leg: the B2BUA as UAC towards the trunk, for one destination of the tree.

Everything that changes this leg's state is in ``TABLE``. The leg sends the
INVITE to ``sip:DESTINATION@TRUNK`` with the caller's session description
untouched (or the engine's own when the call's media is anchored), relays
provisional responses and the answer to the call, PRACKs reliable
provisional responses (RFC 3262), and ends with an outcome the call turns
into the tree's next step: answered, a failure response, a transaction
failure (Timer B or the transport: unreachable), or a CANCEL (the ring
timeout, the caller's CANCEL). A CANCEL waits for the first provisional
response, as RFC 3261 §9.1 requires; a 2xx that crosses it is acknowledged
and hung up; with no final response at all, the INVITE transaction gives up
64*T1 after the CANCEL and the leg ends as cancelled. The caller's ACK is
relayed here so a late offer's answer reaches the callee.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from engine.calls.dialog import Dialog
from engine.sip.headers import parse_address
from engine.sip.message import Request, Response
from engine.sip.timers import Timer
from engine.sip.transaction import ClientInvite, Transaction
from engine.tables import Machine, Row
from routing_trees.model import Forward

if TYPE_CHECKING:
    from engine.calls.call import Call

__all__ = ["OutboundLeg"]

#: RFC 5806 Diversion reasons for the outcome that led to a leg.
_DIVERSION = {"on_busy": "user-busy", "on_no_answer": "no-answer",
              "on_unreachable": "unavailable", "on_overflow": "user-busy"}  # fmt: skip


class OutboundLeg(Machine):
    """The UAC side towards one destination."""

    INITIAL = "calling"

    __slots__ = (
        "ack", "answer", "call", "cancel_reason", "destination", "dialog", "dialogs", "final",
        "forks", "forward", "holds_slot", "index", "invite", "invite_txn", "last_rseq", "lease",
        "path", "ring_timer", "target",
    )  # fmt: skip

    def __init__(self, call: Call, index: int, forward: Forward, path: str) -> None:
        self.call = call
        self.index = index
        self.forward = forward
        self.destination = forward.number
        self.path = path
        self.state = self.INITIAL
        self.invite: Request | None = None
        self.invite_txn: ClientInvite | None = None
        self.dialogs: dict[str, Dialog] = {}
        self.dialog: Dialog | None = None
        self.forks: set[str] = set()  # To tags of other 2xx than the answer, hung up
        self.cancel_reason: str | None = None
        self.last_rseq = 0
        self.ack: Request | None = None
        self.answer: Response | None = None
        self.final: Response | None = None
        self.ring_timer: Timer | None = None
        self.lease = f"{call.call_id}/{index}"
        self.holds_slot = False
        #: A registered phone's Contact and where to send (None: the number, by the trunk).
        self.target: tuple[str, tuple[str, int]] | None = None

    # -- starting -------------------------------------------------------------------------

    def start(self, ring_time: float, offer: bytes | None = None) -> None:
        """Send the INVITE: with the caller's SDP, or ``offer`` when the engine anchors media."""
        ctx = self.call.ctx
        stack = ctx.stack
        caller = self.call.inbound.invite
        number = self.destination
        tag = stack.new_tag()
        host = ctx.local[0]
        identity = self.call.caller or "anonymous"
        where = "anonymous.invalid" if self.call.caller is None else host
        display = parse_address(caller.headers["from"][0]).display
        shown = f'"{display}" ' if display and self.call.caller is not None else ""
        uri, address = self.target or (f"sip:{number}@{ctx.trunk_name}", ctx.trunk)
        headers: dict[str, list[str]] = {
            "max-forwards": ["70"],
            "from": [f"{shown}<sip:{identity}@{where}>;tag={tag}"],
            "to": [f"<{uri}>"],
            "call-id": [f"{stack.new_tag()}@{host}"],
            "cseq": ["1 INVITE"],
            "contact": [ctx.contact],
            "supported": ["100rel, timer"],
            "allow": ["INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO"],
        }
        for name in ("p-asserted-identity", "privacy"):
            if name in caller.headers:
                headers[name] = caller.headers[name][:]
        called = self.call.called
        reason = _DIVERSION.get(self.path.rsplit(".", 1)[-1], "unconditional")
        if called is not None:
            headers["diversion"] = [f"<sip:{called}@{ctx.trunk_name}>;reason={reason};counter=1"]
        body = caller.body if offer is None else offer
        if body:
            given = caller.headers.get("content-type") if offer is None else None
            headers["content-type"] = given[:] if given else ["application/sdp"]
        invite = Request("INVITE", uri, headers, body)
        self.invite = invite
        self.invite_txn = stack.send_request(invite, ctx.transport, address, self, ctx.local)  # type: ignore[assignment]
        self.ring_timer = stack.timers.call_later(ring_time, self.call.ring_timeout, self)

    # -- client transaction user (the INVITE's) ------------------------------------------

    def response_received(self, txn: Transaction, response: Response) -> None:
        status = response.status
        if status == 100:
            self.handle("trying", response)
        elif status < 200:
            self.handle("early" if _to_tag(response) else "progress", response)
        elif status < 300:
            if not self._other_fork(response):
                self.handle("success", response)
        else:
            self.final = response
            self.handle("failure", response)

    def transaction_failed(self, txn: Transaction, reason: str) -> None:
        self.handle("txn_failed", reason)

    def _other_fork(self, response: Response) -> bool:
        """A 2xx of another dialog than the answered one: ACK it, then BYE it (§13.2.2.4).

        A proxy behind the trunk may fork the INVITE and more than one phone
        answer; only the first answer is the call, the others are ended.
        """
        if self.state == "ended":
            return True  # the call is over (maybe dismantled): its fork hangs up by itself
        if self.answer is None or self.dialog is None or self.invite is None:
            return False
        tag = _to_tag(response)
        if tag is None or tag == self.dialog.remote_tag:
            return False
        fork = self.dialogs.get(tag)  # its early dialog, if it rang: CSeq goes on from there
        if fork is None:
            fork = Dialog.as_uac(self.invite, response, self.call.ctx.contact)
        else:
            fork.refresh_target(response)
        self.call.send_ack_on(fork, fork.ack(self.invite.cseq()[0]))  # each retransmission
        if tag not in self.forks:
            self.forks.add(tag)
            self.call.send_in_dialog(fork, "BYE", self.call.ctx.transport, _ignored)
        return True

    def stray_2xx(self, response: Response) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again."""
        if not self._other_fork(response):
            self.handle("success", response)

    # -- what the call asks for ---------------------------------------------------------

    def cancel(self, reason: str) -> None:
        """Stop ringing: ``no_answer`` (ring timeout) or ``cancelled`` (the caller)."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.handle("cancel")

    def relay_ack(self, request: Request | None) -> None:
        """The caller acknowledged our 2xx: acknowledge the callee's, with the ACK's body.

        None when the engine answered the callee's SDP itself (media anchored).
        """
        self.handle("ack", request)

    def hang_up(self) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = "cancelled"
        self.handle("hang_up")

    def in_dialog(self, txn: Any, request: Request) -> None:
        """A request from the callee inside our dialog with it."""
        dialog = self.dialog
        if self.answer is not None and dialog is not None and (
            _from_tag(request) != dialog.remote_tag
        ):  # another fork than the one that answered: never the call's
            if request.method == "BYE" and _from_tag(request) in self.forks:
                txn.respond(request.response(200, None, self._local_tag()))
            else:
                txn.respond(request.response(481, None, self._local_tag()))
            return
        if dialog is None or not dialog.accepts(request):
            txn.respond(request.response(500, "Out Of Order CSeq", self._local_tag()))
            return
        if request.method == "BYE":
            txn.respond(request.response(200, None, self._local_tag()))
            self.handle("bye", request)
        elif request.method == "OPTIONS":
            txn.respond(request.response(200, None, self._local_tag()))
        else:
            self.call.relay(self, txn, request)

    def redirect_targets(self) -> tuple[tuple[str, str], ...]:
        """A 3xx's Contact headers, relayed with it: the targets the caller may try."""
        final = self.final
        if final is None or not 300 <= final.status < 400:
            return ()
        return tuple(("contact", line) for line in final.headers.get("contact", ()))

    def _local_tag(self) -> str:
        return self.dialog.local_tag if self.dialog is not None else ""

    # -- actions ----------------------------------------------------------------------------

    def _early_dialog(self, response: Response) -> None:
        tag = _to_tag(response)
        if tag is not None and tag not in self.dialogs:
            assert self.invite is not None
            dialog = Dialog.as_uac(self.invite, response, self.call.ctx.contact)
            self.dialogs[tag] = dialog
            self.call.register_dialog(dialog, self)
        if tag is not None:
            self.dialog = self.dialogs[tag]

    def _relay_provisional(self, response: Response) -> None:
        requires = {t.lower() for t in response.values("require")}
        if "100rel" in requires and self.dialog is not None:
            rseq_text = response.get("rseq") or ""
            if not rseq_text.isdigit():
                return
            rseq = int(rseq_text)
            if rseq <= self.last_rseq:
                return  # a retransmission: already PRACKed and relayed
            self.last_rseq = rseq
            self._prack(rseq)
        self.call.leg_ringing(self, response)

    def _prack(self, rseq: int) -> None:
        assert self.dialog is not None and self.invite is not None
        prack = self.dialog.request("PRACK")
        prack.headers["rack"] = [f"{rseq} {self.invite.cseq()[0]} INVITE"]
        self.call.send_request_on(self.dialog, prack, None)

    def _send_cancel(self, _arg: Any) -> None:
        txn = self.invite_txn
        assert txn is not None
        self.call.ctx.stack.cancel(txn, _Ignore())
        txn.cancel_sent()  # no 487 within 64*T1: txn_failed ends the leg as the 487 would

    def _stop_ring_timer(self, _arg: Any) -> None:
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None

    def _confirm_dialog(self, response: Response) -> None:
        self._early_dialog(response)
        self.answer = response
        assert self.dialog is not None
        self.dialog.refresh_target(response)

    def _notify_answer(self, response: Response) -> None:
        self.call.leg_answered(self, response)

    def _notify_failure(self, response: Response) -> None:
        self.call.leg_failed(self, response.status, response.reason)

    def _notify_unreachable(self, reason: str) -> None:
        self.call.leg_failed(self, None, "Timer B" if reason == "timeout" else reason)

    def _notify_cancelled(self, _arg: Any) -> None:
        self.call.leg_cancelled(self, self.cancel_reason or "cancelled")

    def _send_ack(self, request: Request | None) -> None:
        """ACK the callee's 2xx, carrying the caller's ACK body when there is one."""
        assert self.dialog is not None and self.invite is not None
        body = request.body if isinstance(request, Request) else b""
        ctype = request.get("content-type") if isinstance(request, Request) else None
        self.ack = self.dialog.ack(self.invite.cseq()[0], body, ctype)
        self.call.send_ack_on(self.dialog, self.ack)

    def _resend_ack(self, _response: Response) -> None:
        if self.ack is not None and self.dialog is not None:
            self.call.send_ack_on(self.dialog, self.ack, resend=True)

    def _send_bye(self, _arg: Any) -> None:
        assert self.dialog is not None
        self.call.send_in_dialog(self.dialog, "BYE", self.call.ctx.transport, self._bye_done)

    def _bye_done(self, _response: Response | None) -> None:
        self.handle("bye_done")

    def _notify_bye(self, _request: Request) -> None:
        self.call.callee_hung_up(self)

    def _finish(self, _arg: Any) -> None:
        self._stop_ring_timer(None)
        self.call.leg_finished(self)

    def _noop(self, _arg: Any) -> None:
        """An event to absorb on purpose (named so the table says so)."""

    _RINGING = ("calling", "proceeding", "early")
    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("calling", "trying"): ("proceeding", ("noop",)),
        ("calling", "progress"): ("proceeding", ("relay_provisional",)),
        ("calling", "early"): ("early", ("early_dialog", "relay_provisional")),
        # No provisional yet: the CANCEL waits for one (RFC 3261 §9.1), but the
        # call does not: the tree goes on at once.
        ("calling", "cancel"): ("cancel_pending", ("stop_ring_timer", "notify_cancelled")),
        ("calling", "hang_up"): ("cancel_pending", ("stop_ring_timer",)),
        ("cancel_pending", "trying"): ("cancelling", ("send_cancel",)),
        ("cancel_pending", "progress"): ("cancelling", ("send_cancel",)),
        ("cancel_pending", "early"): ("cancelling", ("send_cancel",)),
        ("cancel_pending", "cancel"): ("cancel_pending", ("noop",)),
        ("cancel_pending", "hang_up"): ("cancel_pending", ("noop",)),
        ("cancel_pending", "success"): ("ending", ("confirm_dialog", "send_ack", "send_bye",
                                                   "notify_cancelled")),
        ("cancel_pending", "failure"): ("ended", ("notify_cancelled", "finish")),
        ("cancel_pending", "txn_failed"): ("ended", ("notify_cancelled", "finish")),
        ("proceeding", "trying"): ("proceeding", ("noop",)),
        ("proceeding", "progress"): ("proceeding", ("relay_provisional",)),
        ("proceeding", "early"): ("early", ("early_dialog", "relay_provisional")),
        ("proceeding", "cancel"): ("cancelling", ("stop_ring_timer", "send_cancel")),
        ("proceeding", "hang_up"): ("cancelling", ("stop_ring_timer", "send_cancel")),
        ("early", "trying"): ("early", ("noop",)),
        ("early", "progress"): ("early", ("relay_provisional",)),
        ("early", "early"): ("early", ("early_dialog", "relay_provisional")),
        ("early", "cancel"): ("cancelling", ("stop_ring_timer", "send_cancel")),
        ("early", "hang_up"): ("cancelling", ("stop_ring_timer", "send_cancel")),
        **{(s, "success"): ("answered", ("stop_ring_timer", "confirm_dialog", "notify_answer"))
           for s in _RINGING},
        **{(s, "failure"): ("ended", ("stop_ring_timer", "notify_failure", "finish"))
           for s in _RINGING},
        **{(s, "txn_failed"): ("ended", ("stop_ring_timer", "notify_unreachable", "finish"))
           for s in _RINGING},
        ("cancelling", "trying"): ("cancelling", ("noop",)),
        ("cancelling", "progress"): ("cancelling", ("noop",)),
        ("cancelling", "early"): ("cancelling", ("noop",)),
        ("cancelling", "cancel"): ("cancelling", ("noop",)),
        ("cancelling", "hang_up"): ("cancelling", ("noop",)),
        # Answered as the CANCEL went out: acknowledged and hung up, the tree goes on.
        ("cancelling", "success"): ("ending", ("confirm_dialog", "send_ack", "send_bye",
                                               "notify_cancelled")),
        ("cancelling", "failure"): ("ended", ("notify_cancelled", "finish")),
        ("cancelling", "txn_failed"): ("ended", ("notify_cancelled", "finish")),
        ("answered", "success"): ("answered", ("noop",)),  # our ACK waits for the caller's
        ("answered", "ack"): ("confirmed", ("send_ack",)),
        ("answered", "bye"): ("ended", ("notify_bye", "finish")),
        ("answered", "hang_up"): ("ending", ("send_ack", "send_bye")),
        ("confirmed", "success"): ("confirmed", ("resend_ack",)),
        ("confirmed", "bye"): ("ended", ("notify_bye", "finish")),
        ("confirmed", "hang_up"): ("ending", ("send_bye",)),
        ("ending", "success"): ("ending", ("resend_ack",)),
        ("ending", "bye"): ("ending", ("noop",)),
        ("ending", "bye_done"): ("ended", ("finish",)),
    }  # fmt: skip


class _Ignore:
    """The user of a transaction whose outcome changes nothing (CANCEL: the INVITE's decides)."""

    def response_received(self, txn: Transaction, response: Response) -> None:
        pass

    def transaction_failed(self, txn: Transaction, reason: str) -> None:
        pass


def _ignored(_response: Response | None) -> None:
    """The end of a BYE nobody waits for."""


def _from_tag(request: Request) -> str | None:
    try:
        return request.from_address().tag
    except ValueError:
        return None


def _to_tag(response: Response) -> str | None:
    try:
        return parse_address(response.headers["to"][0]).tag
    except (ValueError, KeyError, IndexError):
        return None
