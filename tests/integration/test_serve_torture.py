"""RFC 4475 torture messages over UDP to a real server, then a live OPTIONS from SIPp.

Each message goes out of a socket on a loopback address of its own
(127.x.y.z, port 5060, with a second one on 5050): the server answers a
request at the top Via's port on the source address (RFC 3261 §18.2.2,
``received``), and the messages' Vias name port 5060 or none, 5050 once,
and ``rport`` once. After each message an OPTIONS probe follows; the
answers that come before the probe's are the message's, so a message that
must not be answered is seen not to be, without waiting for silence.
The server runs with a T1 of 30 s, so that no answer to an INVITE is
retransmitted (Timer G) while the module runs: every answer that comes is
the one the message caused. Several files share a branch, sent-by and
method (``z9hG4bKkdjuw`` from ``saturn.example.com`` ...): by RFC 3261
§17.2.3 the later one is a retransmission of the earlier, and gets the
earlier's answer again, which has the status the table expects for both.

The expected status of each request is the table of ``tests/test_sip_stack.py``
(which runs the same files through the transaction layer with a transaction
user answering 200); here the transaction user is the redirect service,
which answers an OPTIONS 200 and an INVITE to a number no tree serves 404.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sip_stack import EXPECTED, expected_answer

from vmskit import (
    TORTURE,
    Message,
    ServeFactory,
    Server,
    UdpPeer,
    parse,
    request,
    run_sipp,
    scenario,
    tree,
)

pytestmark = pytest.mark.integration


def redirect_answer(name: str) -> int | None:
    """What the redirect service answers where the stack's table has the TU's 200."""
    want = expected_answer(name)
    if want == 200 and EXPECTED[name]["method"] == "INVITE":
        return 404  # none of these Request-URIs is a number a tree serves
    return want


@pytest.fixture(scope="module")
def server(serve_module: ServeFactory) -> Server:
    routes = '  - name: desk\n    do: {forward: "+3225550401"}\n'
    return serve_module({"desk.yaml": tree("+3225550400", routes)}, ["+3225550400"],
                        sip={"peers": "open", "timers": {"t1": 30, "t2": 60}},
                        name="torture")  # fmt: skip


def loopback_pair() -> tuple[socket.socket, socket.socket]:
    """UDP sockets on ports 5060 and 5050 of one free 127.x.y.z address."""
    rng = random.Random()
    for _ in range(50):
        host = f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}.{rng.randrange(2, 255)}"
        socks = []
        try:
            for port in (5060, 5050):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, port))
        except OSError:
            for sock in socks:
                sock.close()
            continue
        return socks[0], socks[1]
    pytest.fail("no loopback address 127.x.y.z with UDP ports 5060 and 5050 free")


class Sender:
    """Sends a message, then an OPTIONS probe; what came before the probe's 200 is the
    message's answer."""

    def __init__(self, main: socket.socket, alt: socket.socket) -> None:
        self.main, self.alt = main, alt
        self.local: tuple[str, int] = main.getsockname()[:2]
        self.probes = 0

    def answers(self, data: bytes, server: tuple[str, int]) -> list[Message]:
        self.main.sendto(data, server)
        self.probes += 1
        branch = f"z9hG4bK-probe-{self.probes}"
        probe = request("OPTIONS", "+3225550400", server, self.local, branch=branch)
        self.main.sendto(probe, server)
        out: list[Message] = []
        self.main.settimeout(5.0)
        while True:
            try:
                message = parse(self.main.recv(65535))
            except TimeoutError:
                pytest.fail("the server did not answer the OPTIONS probe: it stopped answering")
            if message.branch == branch:
                assert message.status == 200, message.start
                break
            out.append(message)
        # Sent before the probe's answer, so already in this socket's queue.
        self.alt.setblocking(False)
        while True:
            try:
                out.append(parse(self.alt.recv(65535)))
            except BlockingIOError:
                return out


@pytest.fixture(scope="module")
def sender() -> Iterator[Sender]:
    main, alt = loopback_pair()
    yield Sender(main, alt)
    main.close()
    alt.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message_gets_its_answer(name: str, server: Server, sender: Sender) -> None:
    found = sender.answers((TORTURE / f"{name}.dat").read_bytes(), server.sip)
    want = redirect_answer(name)
    assert [m.status for m in found] == ([] if want is None else [want]), EXPECTED[name]["why"]
    if want in (405, 501):
        assert found[0].get("allow") == "ACK, BYE, CANCEL, INVITE, OPTIONS"
    if want == 420:
        assert found[0].get("unsupported") == "nothingSupportsThis, nothingSupportsThisEither"
    if want == 415:
        assert found[0].get("accept") == "application/sdp"
    if want == 400:  # contract.md: a Warning-free, short reason phrase
        reason = found[0].start.split(" ", 2)[2]
        assert "warning" not in found[0].headers
        assert 0 < len(reason) <= 64 and reason.isprintable() and reason.isascii(), reason


def test_a_live_options_is_served_after_all_torture_messages(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """Every file back to back, nothing awaited; then SIPp's OPTIONS gets its 200."""
    main, alt = loopback_pair()
    try:
        for name in sorted(EXPECTED):
            main.sendto((TORTURE / f"{name}.dat").read_bytes(), server.sip)
    finally:
        main.close()
        alt.close()
    path = scenario(tmp_path, "options_uac.xml")
    result = run_sipp(sipp, tmp_path, path, server.sip, service="+3225550400", calls=3)
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (3, 0), result.explain()
    assert server.proc.poll() is None, "vms serve died"


def junk() -> list[bytes]:
    """Bytes that are not SIP, or not whole SIP, of every size a datagram can have."""
    rng = random.Random(4475)
    out = [rng.randbytes(n) for n in (1, 2, 16, 200, 1400, 9000, 65000)]
    out += [b"\r\n\r\n", b"\x00" * 100, b"A" * 65000, b"INVITE sip:x SIP/2.0\r\n",
            b"SIP/2.0 200 OK\r\n\r\n", b"INVITE \xff\xfe SIP/2.0\r\nVia: \xc3\x28\r\n\r\n",
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKj\r\n"
            b"Content-Length: 99999999999999999999\r\n\r\n"]  # fmt: skip
    return out


def test_junk_over_udp_and_tcp_leaves_the_server_answering(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """Junk datagrams; then junk and every torture file, each on a TCP connection of its
    own, closed at once; then SIPp's OPTIONS over UDP and over TCP get their 200."""
    with UdpPeer() as peer:
        for data in junk():
            peer.send(data, server.sip)
    for data in junk() + [p.read_bytes() for p in sorted(TORTURE.glob("*.dat"))]:
        with socket.create_connection(server.sip, 5.0) as conn:
            conn.sendall(data)
    for transport in ("u1", "t1"):
        path = scenario(tmp_path, "options_uac.xml")
        result = run_sipp(sipp, tmp_path, path, server.sip, service="+3225550400", calls=2,
                          transport=transport)  # fmt: skip
        assert result.returncode == 0, result.explain()
        assert (result.successful, result.failed) == (2, 0), result.explain()
    assert server.proc.poll() is None, "vms serve died"


@pytest.mark.parametrize("rport", [False, True])
def test_a_malformed_request_is_answered_at_its_source(server: Server, rport: bool) -> None:
    """A Content-Length beyond the datagram (RFC 4475 clerr) from a peer whose Via names
    another host: the 400 comes back to the source address (§18.2.1 ``received``), at
    the Via port, or at the source port with ``rport`` (RFC 3581); never to the Via host
    (nor through a DNS lookup of it)."""
    with UdpPeer() as peer:
        # With rport, a Via port nobody listens on: the source port must win.
        sent_by = "192.0.2.99:9;rport" if rport else f"192.0.2.99:{peer.local[1]}"
        data = request("INVITE", "+3225550400", server.sip, peer.local, branch="z9hG4bK-clerr")
        data = data.replace(f"{peer.local[0]}:{peer.local[1]};branch".encode(),
                            f"{sent_by};branch".encode(), 1)  # fmt: skip
        data = data.replace(b"Content-Length: 0", b"Content-Length: 9999")
        peer.send(data + b"v=0\r\n", server.sip)
        probe = request("OPTIONS", "+3225550400", server.sip, peer.local, branch="z9hG4bK-p")
        peer.send(probe, server.sip)
        before = []
        while (message := peer.receive(5.0)) is not None and message.branch != "z9hG4bK-p":
            before.append(message.status)
    assert message is not None, "the server did not answer the OPTIONS probe"
    assert before == [400], "no answer at the source address"
