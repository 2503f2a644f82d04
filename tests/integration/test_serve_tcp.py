"""SIP over TCP on the same port as UDP: SIPp on one connection, and stream framing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vmskit import (
    TRUNK,
    ServeFactory,
    Server,
    ack_for,
    contact_regexp,
    contacts,
    read_messages,
    request,
    run_sipp,
    scenario,
    tcp_connection,
    tree,
)

pytestmark = pytest.mark.integration

NUMBER, DESK = "+3225550300", "+3225550301"
CONTACT = f"<sip:{DESK}@{TRUNK[0]}:{TRUNK[1]}>"


@pytest.fixture(scope="module")
def server(serve_module: ServeFactory) -> Server:
    routes = f'  - name: desk\n    do: {{forward: "{DESK}"}}\n'
    return serve_module({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], name="tcp")


def test_sipp_over_one_tcp_connection(sipp: str, server: Server, tmp_path: Path) -> None:
    """``-t t1``: every call on one TCP connection, INVITE, 302 and ACK alike."""
    path = scenario(tmp_path, "redirect_uac.xml", CONTACT_REGEXP=contact_regexp(DESK))
    result = run_sipp(sipp, tmp_path, path, server.sip, service=NUMBER, calls=10, rate=50,
                      transport="t1", keys={"caller": "+3227001122"})  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (10, 0), result.explain()


def test_sipp_options_over_tcp(sipp: str, server: Server, tmp_path: Path) -> None:
    path = scenario(tmp_path, "options_uac.xml")
    result = run_sipp(sipp, tmp_path, path, server.sip, service=NUMBER, calls=3, transport="t1")
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (3, 0), result.explain()


def test_messages_are_framed_across_and_within_writes(server: Server) -> None:
    """Two INVITEs in one write, then one INVITE in three writes: three 302s, in order."""
    with tcp_connection(server.sip) as sock:
        local = sock.getsockname()[:2]
        invites = [request("INVITE", NUMBER, server.sip, local, transport="TCP",
                           branch=f"z9hG4bK-tcp-{i}") for i in range(3)]  # fmt: skip
        sock.sendall(invites[0] + invites[1])
        third = invites[2]
        cuts = (len(third) // 3, 2 * len(third) // 3)
        for piece in (third[: cuts[0]], third[cuts[0] : cuts[1]], third[cuts[1] :]):
            sock.sendall(piece)
            time.sleep(0.05)  # let each piece go out as a segment of its own
        responses = read_messages(sock, 3)
    assert [r.status for r in responses] == [302, 302, 302]
    assert [r.branch for r in responses] == [f"z9hG4bK-tcp-{i}" for i in range(3)]
    assert all(contacts(r) == [CONTACT] for r in responses)
    assert len({r.to_tag for r in responses}) == 3


def test_a_pipelined_ack_and_options_on_the_same_connection(server: Server) -> None:
    """The ACK of a 302 is absorbed (no answer); the OPTIONS after it is answered."""
    with tcp_connection(server.sip) as sock:
        local = sock.getsockname()[:2]
        invite = request("INVITE", NUMBER, server.sip, local, transport="TCP")
        sock.sendall(invite)
        (response,) = read_messages(sock, 1)
        assert response.status == 302
        options = request("OPTIONS", NUMBER, server.sip, local, transport="TCP")
        sock.sendall(ack_for(invite, response) + options)
        (answer,) = read_messages(sock, 1)
        assert answer.status == 200 and answer.get("cseq") == "1 OPTIONS"


def test_a_body_split_across_writes_is_framed_by_content_length(server: Server) -> None:
    """An INVITE with SDP cut inside the body, then a second INVITE in the last write."""
    sdp = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           b"m=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n")  # fmt: skip
    with tcp_connection(server.sip) as sock:
        local = sock.getsockname()[:2]
        first = request("INVITE", NUMBER, server.sip, local, transport="TCP", branch="z9hG4bK-b1",
                        extra="Content-Type: application/sdp\r\n")  # fmt: skip
        first = first.replace(b"Content-Length: 0\r\n\r\n",
                              b"Content-Length: %d\r\n\r\n" % len(sdp)) + sdp  # fmt: skip
        second = request("INVITE", NUMBER, server.sip, local, transport="TCP", branch="z9hG4bK-b2")
        cut = len(first) - len(sdp) // 2
        sock.sendall(first[:cut])
        time.sleep(0.05)
        sock.sendall(first[cut:] + second)
        responses = read_messages(sock, 2)
    assert [(r.status, r.branch) for r in responses] == [(302, "z9hG4bK-b1"), (302, "z9hG4bK-b2")]


def test_a_keepalive_ping_gets_its_pong(server: Server) -> None:
    """RFC 5626 §4.4.1: a double CRLF is answered with a single CRLF; SIP goes on."""
    with tcp_connection(server.sip) as sock:
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(16) == b"\r\n"
        local = sock.getsockname()[:2]
        sock.sendall(request("INVITE", NUMBER, server.sip, local, transport="TCP"))
        (response,) = read_messages(sock, 1)
    assert response.status == 302


def test_an_invalid_message_between_two_gets_400_and_the_connection_goes_on(
    server: Server,
) -> None:
    """Framed by its Content-Length, a message without Call-ID is refused alone."""
    with tcp_connection(server.sip) as sock:
        local = sock.getsockname()[:2]
        first, bad, last = (request("INVITE", NUMBER, server.sip, local, transport="TCP",
                                    branch=f"z9hG4bK-tcpbad-{i}") for i in range(3))  # fmt: skip
        head, _, rest = bad.partition(b"Call-ID:")
        bad = head + rest.partition(b"\r\n")[2]
        sock.sendall(first + bad + last)
        responses = read_messages(sock, 3)
        assert [r.status for r in responses] == [302, 400, 302]
        sock.sendall(request("INVITE", NUMBER, server.sip, local, transport="TCP",
                             branch="z9hG4bK-tcpbad-after"))  # fmt: skip
        assert [r.status for r in read_messages(sock, 1)] == [302]  # still open
