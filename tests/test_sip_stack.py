"""The transaction layer: matching, retransmissions, CANCEL, RFC 3581, peers, overload, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from engine.sip.headers import parse_address
from engine.sip.message import Request
from engine.sip.parser import parse_datagram
from engine.sip.peers import PeerFilter
from engine.sip.stack import SipStack
from sipkit import PEER, FakeTransport, RecordingTU, request_bytes

TORTURE = Path(__file__).parent / "data" / "rfc4475"
EXPECTED = json.loads((TORTURE / "expected.json").read_text())

#: Where our role (a redirect server or B2BUA, not a registrar) decides the
#: answer rather than the message's syntax: REGISTER and MESSAGE are not
#: methods we serve, so the well-formed ones get 405 with Allow.
ROLE = {"escnull": 405, "dblreq": 405, "mpart01": 405, "unksm2": 405, "regaut01": 405,
        "cparam01": 405, "cparam02": 405, "regescrt": 405}  # fmt: skip


def make(
    status: int | None = 200, peers: list[str] | None = None
) -> tuple[SipStack, Clock, RecordingTU]:
    clock = Clock()
    tu = RecordingTU(status)
    stack = SipStack(clock, tu, peers=PeerFilter(peers))
    tu.stack = stack
    return stack, clock, tu


def expected_answer(name: str) -> int | None:
    if name in ROLE:
        return ROLE[name]
    entry = EXPECTED[name]
    if entry["kind"] == "response":
        return None
    return entry["uas_response"] or 200  # valid and ours to serve: the TU answers 200


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message_gets_the_rfc_answer(name: str) -> None:
    stack, _, tu = make()
    transport = FakeTransport()
    stack.receive_datagram((TORTURE / f"{name}.dat").read_bytes(), transport, ("192.0.2.1", 5060))
    want = expected_answer(name)
    if want is None:
        assert transport.sent == []  # responses nobody asked for are not answered
        return
    statuses = transport.statuses()
    assert statuses == [want], f"{name}: {EXPECTED[name]['why']}"
    assert bool(tu.requests) == (want == 200)
    if want not in (405, 501, 420, 415):
        return
    response = transport.messages()[0]
    if want in (405, 501):
        assert response.get("allow") == "ACK, BYE, CANCEL, INVITE, OPTIONS"
    if want == 420:
        assert response.get("unsupported") == "nothingSupportsThis, nothingSupportsThisEither"
    if want == 415:
        assert response.get("accept") == "application/sdp"


def test_the_next_message_is_served_after_every_torture_message() -> None:
    stack, _, _ = make()
    transport = FakeTransport()
    for name in sorted(EXPECTED):
        stack.receive_datagram((TORTURE / f"{name}.dat").read_bytes(), transport, PEER)
    transport.clear()
    stack.receive_datagram(request_bytes("OPTIONS", branch="z9hG4bK-live"), transport, PEER)
    assert transport.statuses() == [200]


def test_retransmitted_invite_gets_the_same_response_and_one_decision() -> None:
    stack, _, tu = make(302)
    transport = FakeTransport()
    data = request_bytes("INVITE")
    for _ in range(3):
        stack.receive_datagram(data, transport, PEER)
    assert len(tu.requests) == 1
    assert len({d for d, _ in transport.sent}) == 1 and len(transport.sent) == 3
    assert stack.counters.retransmissions == 2


def test_ack_for_a_failure_is_absorbed_and_a_stray_ack_reaches_the_tu() -> None:
    stack, clock, tu = make(486)
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("INVITE"), transport, PEER)
    tag = parse_address(transport.messages()[0].get("to") or "").tag
    stack.receive_datagram(request_bytes("ACK", to_tag=tag), transport, PEER)
    assert tu.acks == []
    clock.advance(1)
    assert transport.statuses() == [486]  # the ACK stopped timer G
    stack.receive_datagram(
        request_bytes("ACK", branch="z9hG4bK-other", to_tag="x"), transport, PEER
    )
    assert len(tu.acks) == 1


def test_cancel_of_a_pending_invite_gets_200_and_the_invite_487() -> None:
    stack, _, tu = make(None)
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("INVITE"), transport, PEER)
    stack.receive_datagram(request_bytes("CANCEL"), transport, PEER)
    assert sorted(transport.statuses()) == [200, 487]
    assert len(tu.cancelled) == 1
    cancel_ok = next(m for m in transport.messages() if m.status == 200)
    assert cancel_ok.get("cseq") == "1 CANCEL"


def test_cancel_after_the_final_response_and_unmatched_cancel() -> None:
    stack, _, tu = make(302)
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("INVITE"), transport, PEER)
    stack.receive_datagram(request_bytes("CANCEL"), transport, PEER)
    assert transport.statuses() == [302, 200] and tu.cancelled == []
    transport.clear()
    stack.receive_datagram(request_bytes("CANCEL", branch="z9hG4bK-nothing"), transport, PEER)
    assert transport.statuses() == [481]


def test_100_trying_when_the_tu_answers_late() -> None:
    stack, clock, _ = make(None)
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("INVITE"), transport, PEER)
    clock.advance(0.25)
    assert transport.statuses() == [100]


def test_rport_and_received_route_the_response_back_to_the_source() -> None:
    stack, _, _ = make()
    transport = FakeTransport()
    data = request_bytes("OPTIONS").replace(b"127.0.0.1:5070;branch", b"10.0.0.9:5060;rport;branch")
    stack.receive_datagram(data, transport, ("192.0.2.7", 40000))
    ((payload, addr),) = transport.sent
    assert addr == ("192.0.2.7", 40000)
    via = parse_datagram(payload).get("via")
    assert via == "SIP/2.0/UDP 10.0.0.9:5060;rport=40000;branch=z9hG4bK-test-1;received=192.0.2.7"


def test_received_without_rport_uses_the_via_port() -> None:
    stack, _, _ = make()
    transport = FakeTransport()
    data = request_bytes("OPTIONS").replace(b"127.0.0.1:5070", b"pbx.example.com:5062")
    stack.receive_datagram(data, transport, ("192.0.2.8", 5062))
    ((payload, addr),) = transport.sent
    assert addr == ("192.0.2.8", 5062)
    assert b"received=192.0.2.8" in payload


def test_answers_never_go_to_a_host_the_sender_names() -> None:
    """A received= of the sender's own, or a maddr name, is neither resolved nor obeyed."""
    stack, _, _ = make()
    transport = FakeTransport()
    via = b"192.0.2.9:5062;received=198.51.100.1;maddr=victim.example;branch"
    data = request_bytes("OPTIONS").replace(b"127.0.0.1:5070;branch", via)
    stack.receive_datagram(data, transport, ("192.0.2.9", 5062))
    ((_, addr),) = transport.sent
    assert addr == ("192.0.2.9", 5062)


def test_maddr_is_obeyed_as_an_address_from_a_peer_only() -> None:
    stack, _, _ = make()
    stack.peers = PeerFilter(["192.0.2.0/24"])
    transport = FakeTransport()
    via = b"192.0.2.9;maddr=239.1.1.1;branch"
    data = request_bytes("OPTIONS").replace(b"127.0.0.1:5070;branch", via)
    stack.receive_datagram(data, transport, ("192.0.2.9", 5060))
    stranger = data.replace(b"192.0.2.9", b"203.0.113.5")
    stack.receive_datagram(stranger, transport, ("203.0.113.5", 5060))
    (_, to_peer), (_, to_stranger) = transport.sent
    assert to_peer == ("239.1.1.1", 5060)
    assert to_stranger == ("203.0.113.5", 5060)  # its 403 goes back where it came from


def test_reliable_transport_answers_on_the_connection_it_came_from() -> None:
    stack, _, _ = make()
    transport = FakeTransport(reliable=True, name="TCP")
    data = request_bytes("OPTIONS", transport="TCP").replace(b"127.0.0.1:5070", b"10.9.9.9:5060")
    stack.receive_datagram(data, transport, ("192.0.2.9", 33333))
    assert transport.sent[0][1] == ("192.0.2.9", 33333)


def test_rfc2543_invite_retransmission_is_matched_without_a_branch() -> None:
    stack, _, tu = make(404)
    transport = FakeTransport()
    data = (TORTURE / "inv2543.dat").read_bytes()
    stack.receive_datagram(data, transport, ("192.0.2.5", 5060))
    stack.receive_datagram(data, transport, ("192.0.2.5", 5060))
    assert len(tu.requests) == 1 and transport.statuses() == [404, 404]


def test_requests_from_non_peers_get_403_without_a_decision() -> None:
    stack, _, tu = make(302, peers=["10.0.0.0/8"])
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("INVITE"), transport, ("192.0.2.66", 5060))
    assert transport.statuses() == [403] and tu.requests == []
    stack.receive_datagram(
        request_bytes("INVITE", branch="z9hG4bK-2"), transport, ("10.1.2.3", 5060)
    )
    assert transport.statuses() == [403, 302]
    assert stack.counters.forbidden == 1


def test_overload_refuses_new_invites_but_serves_retransmissions_and_other_methods() -> None:
    stack, _, tu = make(302)
    transport = FakeTransport()
    accepted = request_bytes("INVITE", branch="z9hG4bK-accepted")
    stack.receive_datagram(accepted, transport, PEER)
    stack.receive_datagram(accepted, transport, PEER, overloaded=True)
    stack.receive_datagram(request_bytes("INVITE", branch="z9hG4bK-new"), transport, PEER,
                           overloaded=True)  # fmt: skip
    stack.receive_datagram(request_bytes("OPTIONS", branch="z9hG4bK-o"), transport, PEER,
                           overloaded=True)  # fmt: skip
    assert transport.statuses() == [302, 302, 503, 302]
    assert transport.messages()[2].get("retry-after") == "5"
    assert len(tu.requests) == 2


def test_a_failing_tu_answers_500_and_the_next_request_is_served() -> None:
    stack, _, tu = make(200)
    transport = FakeTransport()

    def broken(txn: Any, request: Request) -> None:
        raise RuntimeError("bug")

    tu.request_received = broken  # type: ignore[method-assign]
    stack.receive_datagram(request_bytes("OPTIONS"), transport, PEER)
    assert transport.statuses() == [500]


def test_responses_match_client_transactions_and_strays_go_to_the_tu() -> None:
    stack, _, tu = make()
    transport = FakeTransport()
    got: list[Any] = []

    class User:
        def response_received(self, txn: Any, response: Any) -> None:
            got.append(response.status)

        def transaction_failed(self, txn: Any, reason: str) -> None:
            got.append(reason)

    out = Request("OPTIONS", "sip:127.0.0.1:5080", {
        "from": ["<sip:vms@127.0.0.1>;tag=1"], "to": ["<sip:127.0.0.1:5080>"],
        "call-id": ["probe-1"], "cseq": ["7 OPTIONS"]})  # fmt: skip
    txn = stack.send_request(out, transport, ("127.0.0.1", 5080), User(), ("127.0.0.1", 5060))
    sent = parse_datagram(transport.sent[0][0])
    assert isinstance(sent, Request)
    assert sent.top_via().params["rport"] is None
    reply = sent.response(200, None, "t")
    stack.receive_datagram(reply.to_bytes(), transport, ("127.0.0.1", 5080))
    assert got == [200] and txn.state == "completed"
    other = sent.response(200, None, "t")
    other.headers["via"] = ["SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKunknown"]
    stack.receive_datagram(other.to_bytes(), transport, ("127.0.0.1", 5080))
    assert len(tu.stray) == 1
