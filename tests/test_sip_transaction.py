"""RFC 3261 §17 transaction machines: every table row, and timers A to M on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.task import Clock

from engine.sip.message import Request, Response
from engine.sip.stack import SipStack
from engine.sip.transaction import (
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
    Transaction,
)
from sipkit import PEER, ClientRecorder, FakeTransport, RecordingTU, request

T1, T2, T4 = 0.5, 4.0, 5.0


def make_stack() -> tuple[SipStack, Clock, RecordingTU]:
    clock = Clock()
    tu = RecordingTU(status=None)
    stack = SipStack(clock, tu)
    tu.stack = stack
    return stack, clock, tu


def server(cls: type, reliable: bool = False) -> tuple[Any, FakeTransport, Clock, RecordingTU]:
    stack, clock, tu = make_stack()
    transport = FakeTransport(reliable=reliable)
    method = "INVITE" if cls is ServerInvite else "OPTIONS"
    txn = cls(stack, ("key",), request(method), transport, PEER)
    stack.server[txn.key] = txn
    return txn, transport, clock, tu


def client(cls: type, reliable: bool = False) -> tuple[Any, FakeTransport, Clock, ClientRecorder]:
    stack, clock, _ = make_stack()
    transport = FakeTransport(reliable=reliable)
    user = ClientRecorder()
    method = "INVITE" if cls is ClientInvite else "OPTIONS"
    outgoing = Request(method, "sip:+3225550001@127.0.0.1:5080", {
        "from": ["<sip:vms@127.0.0.1>;tag=f1"], "to": ["<sip:+3225550001@127.0.0.1>"],
        "call-id": ["out-1"], "cseq": [f"1 {method}"]})  # fmt: skip
    txn = stack.send_request(outgoing, transport, PEER, user, ("127.0.0.1", 5060))
    return txn, transport, clock, user


def answer(txn: Transaction, status: int) -> Response:
    return txn.request.response(status, None, "to-tag" if status > 100 else None)


# -- recipes that bring a fresh transaction into each state -------------------------

SERVER_STATES: dict[type, dict[str, Callable[[Any], None]]] = {
    ServerInvite: {
        "proceeding": lambda t: None,
        "completed": lambda t: t.respond(answer(t, 486)),
        "confirmed": lambda t: (t.respond(answer(t, 486)), t.handle("ack")),
        "accepted": lambda t: t.respond(answer(t, 200)),
    },
    ServerNonInvite: {
        "trying": lambda t: None,
        "proceeding": lambda t: t.respond(answer(t, 100)),
        "completed": lambda t: t.respond(answer(t, 200)),
    },
}
CLIENT_STATES: dict[type, dict[str, Callable[[Any], None]]] = {
    ClientInvite: {
        "calling": lambda t: None,
        "proceeding": lambda t: t.receive(answer(t, 180)),
        "completed": lambda t: t.receive(answer(t, 486)),
        "accepted": lambda t: t.receive(answer(t, 200)),
    },
    ClientNonInvite: {
        "trying": lambda t: None,
        "proceeding": lambda t: t.receive(answer(t, 100)),
        "completed": lambda t: t.receive(answer(t, 200)),
    },
}
SERVER_EVENTS: dict[str, Callable[[Any], Any]] = {
    "provisional": lambda t: t.respond(answer(t, 180 if isinstance(t, ServerInvite) else 100)),
    "success": lambda t: t.respond(answer(t, 200)),
    "failure": lambda t: t.respond(answer(t, 486)),
}
CLIENT_EVENTS: dict[str, Callable[[Any], Any]] = {
    "provisional": lambda t: t.receive(answer(t, 180)),
    "success": lambda t: t.receive(answer(t, 200)),
    "failure": lambda t: t.receive(answer(t, 486)),
}


def _rows(cls: type) -> list[tuple[type, str, str, str]]:
    return [(cls, state, event, nxt) for (state, event), (nxt, _) in cls.TABLE.items()]


@pytest.mark.parametrize(
    ("cls", "state", "event", "expected"),
    [row for cls in SERVER_STATES for row in _rows(cls)],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_every_server_row(cls: type, state: str, event: str, expected: str) -> None:
    txn, _, _, _ = server(cls)
    SERVER_STATES[cls][state](txn)
    assert txn.state == state
    SERVER_EVENTS.get(event, lambda t: t.handle(event))(txn)
    assert txn.state == expected


@pytest.mark.parametrize(
    ("cls", "state", "event", "expected"),
    [row for cls in CLIENT_STATES for row in _rows(cls)],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_every_client_row(cls: type, state: str, event: str, expected: str) -> None:
    txn, _, _, _ = client(cls)
    CLIENT_STATES[cls][state](txn)
    assert txn.state == state
    CLIENT_EVENTS.get(event, lambda t: t.handle(event))(txn)
    assert txn.state == expected


def test_events_without_a_row_are_absorbed() -> None:
    txn, transport, _, _ = server(ServerInvite)
    txn.respond(answer(txn, 486))
    txn.handle("ack")
    sent = len(transport.sent)
    assert txn.handle("timer_g") is False  # G was stopped by the ACK; a late fire is nothing
    assert txn.state == "confirmed" and len(transport.sent) == sent


def test_tu_cannot_answer_twice() -> None:
    txn, _, _, _ = server(ServerNonInvite)
    txn.respond(answer(txn, 200))
    with pytest.raises(RuntimeError):
        txn.respond(answer(txn, 404))


# -- timers on the clock -----------------------------------------------------------------


def times_of_sends(transport: FakeTransport, clock: Clock, until: float, step: float = 0.25):
    """When each send happened (a step that is exact in binary keeps times exact)."""
    stamps = []
    count = len(transport.sent)
    while clock.seconds() < until:
        clock.advance(step)
        if len(transport.sent) != count:
            stamps.extend([round(clock.seconds(), 2)] * (len(transport.sent) - count))
            count = len(transport.sent)
    return stamps


def test_timer_g_doubles_to_t2_and_timer_h_ends_it_after_64_t1() -> None:
    txn, transport, clock, tu = server(ServerInvite)
    txn.respond(answer(txn, 486))
    stamps = times_of_sends(transport, clock, until=40)
    assert stamps == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert txn.state == "terminated"
    assert [reason for _, reason in tu.failed] == ["timeout"]
    assert txn.key not in txn.layer.server


def test_ack_stops_g_and_h_and_timer_i_absorbs_acks_for_t4() -> None:
    txn, transport, clock, tu = server(ServerInvite)
    txn.respond(answer(txn, 486))
    clock.advance(0.6)  # one retransmission
    txn.handle("ack")
    sent = len(transport.sent)
    clock.advance(T4 - 0.01)
    assert txn.state == "confirmed"
    txn.handle("ack")
    clock.advance(0.02)
    assert txn.state == "terminated" and len(transport.sent) == sent and not tu.failed


def test_reliable_transport_has_no_retransmissions_and_zero_i() -> None:
    txn, transport, clock, _ = server(ServerInvite, reliable=True)
    txn.respond(answer(txn, 486))
    clock.advance(10)
    assert len(transport.sent) == 1
    txn.handle("ack")
    clock.advance(0)
    assert txn.state == "terminated"


def test_retransmitted_request_gets_the_same_response_bytes() -> None:
    txn, transport, _, _ = server(ServerInvite)
    txn.respond(answer(txn, 180))
    txn.handle("request")
    txn.respond(answer(txn, 404))
    txn.handle("request")
    assert [d for d, _ in transport.sent] == [transport.sent[0][0]] * 2 + [transport.sent[2][0]] * 2


def test_accepted_state_absorbs_invite_retransmissions_for_64_t1() -> None:
    txn, transport, clock, tu = server(ServerInvite)
    txn.respond(answer(txn, 200))
    txn.handle("request")
    assert len(transport.sent) == 1 and not tu.requests
    txn.respond(answer(txn, 200))  # the TU's own 2xx retransmission passes
    assert len(transport.sent) == 2
    clock.advance(64 * T1 + 0.01)
    assert txn.state == "terminated"


def test_100_trying_when_the_tu_takes_longer_than_200_ms() -> None:
    txn, transport, clock, _ = server(ServerInvite)
    txn.handle("tu_pending")
    clock.advance(0.19)
    assert transport.sent == []
    clock.advance(0.02)
    assert transport.statuses() == [100]
    txn.respond(answer(txn, 486))
    assert transport.statuses() == [100, 486]


def test_server_non_invite_timer_j() -> None:
    txn, transport, clock, _ = server(ServerNonInvite)
    txn.respond(answer(txn, 200))
    txn.handle("request")
    assert len(transport.sent) == 2
    clock.advance(64 * T1 - 0.01)
    assert txn.state == "completed"
    clock.advance(0.02)
    assert txn.state == "terminated"


def test_client_invite_timer_a_doubles_without_cap_and_b_times_out() -> None:
    txn, transport, clock, user = client(ClientInvite)
    stamps = times_of_sends(transport, clock, until=33)
    assert stamps == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert txn.state == "terminated"
    assert user.failures == ["timeout"]


def test_client_invite_acks_a_failure_with_the_response_to_tag() -> None:
    txn, transport, clock, user = client(ClientInvite)
    transport.clear()
    failure = answer(txn, 486)
    txn.receive(failure)
    txn.receive(failure)  # retransmitted by the peer: ACKed again, not passed up
    acks = transport.messages()
    assert [m.method for m in acks] == ["ACK", "ACK"]
    ack = acks[0]
    assert ack.top_via().branch == txn.request.top_via().branch
    assert ack.get("to") == failure.get("to")
    assert ack.get("cseq") == "1 ACK"
    assert [r.status for r in user.responses] == [486]
    clock.advance(31.9)
    assert txn.state == "completed"
    clock.advance(0.2)
    assert txn.state == "terminated"


def test_client_invite_accepted_passes_2xx_retransmissions_up() -> None:
    txn, _, clock, user = client(ClientInvite)
    txn.receive(answer(txn, 200))
    txn.receive(answer(txn, 200))
    assert [r.status for r in user.responses] == [200, 200]
    clock.advance(64 * T1 + 0.01)
    assert txn.state == "terminated"


def test_client_non_invite_timer_e_then_t2_in_proceeding_and_f() -> None:
    txn, transport, clock, user = client(ClientNonInvite)
    stamps = times_of_sends(transport, clock, until=4)
    assert stamps == [0.5, 1.5, 3.5]
    txn.receive(answer(txn, 100))
    transport.clear()
    stamps = times_of_sends(transport, clock, until=33)
    # E keeps its running interval, then is reset to T2 at each firing (§17.1.2.2).
    assert stamps == [7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert txn.state == "terminated" and user.failures == ["timeout"]


def test_client_non_invite_timer_k_on_udp_and_zero_on_tcp() -> None:
    txn, _, clock, _ = client(ClientNonInvite)
    txn.receive(answer(txn, 200))
    clock.advance(T4 - 0.01)
    assert txn.state == "completed"
    clock.advance(0.02)
    assert txn.state == "terminated"
    txn, transport, clock, _ = client(ClientNonInvite, reliable=True)
    clock.advance(10)
    assert len(transport.sent) == 1  # no timer E on a reliable transport
    txn.receive(answer(txn, 200))
    clock.advance(0)
    assert txn.state == "terminated"


def test_transport_error_reports_to_the_user() -> None:
    txn, _, _, user = client(ClientNonInvite)
    txn.handle("transport_error")
    assert txn.state == "terminated" and user.failures == ["transport"]
