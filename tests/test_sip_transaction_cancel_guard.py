"""RFC 3261 §9.1 on a fake clock: a client INVITE whose CANCEL brings no final response ends."""

from __future__ import annotations

from twisted.internet.task import Clock

from engine.sip.message import Request
from engine.sip.stack import SipStack
from engine.sip.transaction import ClientInvite
from sipkit import PEER, ClientRecorder, FakeTransport, RecordingTU

T1 = 0.5


def ringing_invite(reliable: bool = False) -> tuple[ClientInvite, SipStack, Clock, ClientRecorder]:
    """A client INVITE in Proceeding (a 180 came), as a ring timeout finds it."""
    clock = Clock()
    stack = SipStack(clock, RecordingTU(status=None))
    user = ClientRecorder()
    invite = Request("INVITE", "sip:+3225550001@127.0.0.1:5080", {
        "from": ["<sip:vms@127.0.0.1>;tag=f1"], "to": ["<sip:+3225550001@127.0.0.1>"],
        "call-id": ["out-1"], "cseq": ["1 INVITE"]})  # fmt: skip
    txn = stack.send_request(invite, FakeTransport(reliable=reliable), PEER, user,
                             ("127.0.0.1", 5060))  # fmt: skip
    assert isinstance(txn, ClientInvite)
    txn.receive(txn.request.response(180, None, "to-tag"))
    return txn, stack, clock, user


def test_no_final_response_64_t1_after_the_cancel_ends_the_invite() -> None:
    txn, stack, clock, user = ringing_invite()
    clock.advance(100)  # ringing alone never ends it: the TU's ring timer does
    assert txn.state == "proceeding"
    txn.cancel_sent()
    clock.advance(64 * T1 - 0.1)
    assert txn.state == "proceeding" and user.failures == []
    clock.advance(0.2)
    assert txn.state == "terminated" and user.failures == ["timeout"]
    assert txn.key not in stack.client


def test_the_guard_is_64_t1_on_a_reliable_transport_too() -> None:
    txn, _, clock, user = ringing_invite(reliable=True)
    txn.cancel_sent()
    clock.advance(64 * T1 - 0.1)
    assert txn.state == "proceeding"
    clock.advance(0.2)
    assert user.failures == ["timeout"]


def test_a_487_after_the_cancel_stops_the_guard() -> None:
    txn, _, clock, user = ringing_invite()
    txn.cancel_sent()
    clock.advance(10)
    txn.receive(txn.request.response(487, None, "to-tag"))
    assert txn.state == "completed"
    clock.advance(64 * T1 + 0.1)
    assert txn.state == "terminated" and user.failures == []  # Timer D, not the guard
    assert [r.status for r in user.responses] == [180, 487]


def test_a_2xx_that_crosses_the_cancel_stops_the_guard() -> None:
    txn, _, clock, user = ringing_invite()
    txn.cancel_sent()
    txn.receive(txn.request.response(200, None, "to-tag"))
    assert txn.state == "accepted" and "cancelled" not in txn.timers
    clock.advance(64 * T1 + 0.1)
    assert txn.state == "terminated" and user.failures == []  # Timer M, not the guard
