"""ICMP errors on UDP: read from the socket's error queue, they fail the client
transactions to the address that is unreachable, at once instead of at Timer B.

Real sockets on loopback (the kernel answers a datagram to a closed port with
ICMP port unreachable, and loopback is not rate-limited); the transport is
driven by hand on a recording loop, or by the real reactor where what matters
is how Twisted's poll reactor reports an error alone (EPOLLERR).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from b2bkit import TRUNK_ADDR, Harness, only
from engine.sip.message import Request, Response
from engine.sip.overload import Overload
from engine.sip.stack import SipStack
from engine.sip.transport import UdpTransport, _fails_send, _quoted_branch
from sipkit import FakeTransport, RecordingTU, request, request_bytes

LOCAL = "127.0.0.1"


class Loop(Clock):
    """The reactor as the transport sees it: a clock, and who reads."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.remove(reader)


class User:
    """A client transaction user that keeps how each transaction ended."""

    def __init__(self) -> None:
        self.failed: list[tuple[Any, str]] = []
        self.responses: list[Response] = []
        self.first_failure: defer.Deferred[str] = defer.Deferred()

    def response_received(self, txn: Any, response: Response) -> None:
        self.responses.append(response)

    def transaction_failed(self, txn: Any, reason: str) -> None:
        self.failed.append((txn, reason))
        if not self.first_failure.called:
            self.first_failure.callback(reason)


def closed_port(host: str = LOCAL) -> int:
    """A UDP port nothing listens on (bound, then let go)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_error(sock: socket.socket) -> None:
    """Until the kernel has queued an ICMP error on ``sock`` (on loopback, at once)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    events = poller.poll(2000)
    assert events and events[0][1] & select.POLLERR, f"no ICMP error queued: {events}"


def pending(sock: socket.socket) -> int:
    """What poll reports on ``sock`` now (0: nothing to read, no error)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    events = poller.poll(0)
    return events[0][1] if events else 0


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.settimeout(2)
    yield sock
    sock.close()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def udp(loop: Loop) -> Iterator[UdpTransport]:
    stack = SipStack(loop, RecordingTU())
    stack.tu.stack = stack  # type: ignore[attr-defined]  # RecordingTU tags its answers
    transport = UdpTransport(loop, stack, Overload(0.2), LOCAL, 0)
    yield transport
    transport.sock.close()


def send(udp: UdpTransport, method: str, addr: tuple[str, int], user: User) -> Any:
    req = request(method, uri=f"sip:+3225550001@{addr[0]}:{addr[1]}")
    del req.headers["via"]
    return udp.stack.send_request(req, udp, addr, user, udp.local)


def test_port_unreachable_fails_the_client_transactions_to_that_address(
    udp: UdpTransport, peer: socket.socket
) -> None:
    closed = (LOCAL, closed_port())
    live = peer.getsockname()
    user = User()
    invite = send(udp, "INVITE", closed, user)
    options = send(udp, "OPTIONS", closed, user)
    elsewhere = send(udp, "OPTIONS", live, user)
    wait_for_error(udp.sock)
    udp.doRead()
    assert user.failed == [(invite, "transport"), (options, "transport")]
    assert udp.stack.client == {elsewhere.key: elsewhere}
    assert udp.stack.client_to == {live: {elsewhere.key: elsewhere}}
    assert pending(udp.sock) == 0  # drained: the reactor is not woken again for it


def test_a_send_after_an_icmp_error_still_goes_out(udp: UdpTransport, peer: socket.socket) -> None:
    """With IP_RECVERR the pending error fails the next send, wherever it goes."""
    closed = (LOCAL, closed_port())
    user = User()
    send(udp, "OPTIONS", closed, user)
    wait_for_error(udp.sock)
    udp.send(b"after the error", peer.getsockname())
    assert peer.recv(100) == b"after the error"
    assert udp.send_errors == 0
    udp.doRead()  # the queue still names the closed port
    assert [reason for _, reason in user.failed] == ["transport"]


def test_a_datagram_behind_the_error_is_read_next(udp: UdpTransport, peer: socket.socket) -> None:
    user = User()
    send(udp, "INVITE", (LOCAL, closed_port()), user)
    wait_for_error(udp.sock)
    peer.sendto(request_bytes("OPTIONS", branch="z9hG4bK-behind"), udp.local)
    udp.doRead()
    assert len(user.failed) == 1
    udp.doRead()
    assert [r.method for r in udp.stack.tu.requests] == ["OPTIONS"]  # type: ignore[attr-defined]


def test_an_error_alone_is_read_and_the_transport_reads_on(loop: Loop, udp: UdpTransport) -> None:
    """What the poll reactors do with EPOLLERR alone: stop reading, readConnectionLost."""
    user = User()
    send(udp, "INVITE", (LOCAL, closed_port()), user)
    wait_for_error(udp.sock)
    udp.readConnectionLost(None)
    assert len(user.failed) == 1
    assert loop.readers == [udp]
    assert pending(udp.sock) == 0


def test_ipv6_port_unreachable(loop: Loop) -> None:
    try:
        stack = SipStack(loop, RecordingTU())
        udp = UdpTransport(loop, stack, Overload(0.2), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        user = User()
        send(udp, "INVITE", ("::1", closed_port("::1")), user)
        wait_for_error(udp.sock)
        udp.doRead()
        assert [reason for _, reason in user.failed] == ["transport"]
    finally:
        udp.sock.close()


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "fails"),
    [
        (2, 3, 3, True),  # port unreachable
        (2, 3, 1, True),  # host unreachable
        (2, 3, 13, True),  # administratively prohibited
        (2, 12, 0, True),  # parameter problem
        (2, 3, 4, False),  # fragmentation needed: path MTU, not reachability
        (2, 11, 0, False),  # TTL exceeded
        (3, 1, 4, True),  # ICMPv6 port unreachable
        (3, 4, 0, True),  # ICMPv6 parameter problem
        (3, 2, 0, False),  # ICMPv6 packet too big
        (3, 3, 0, False),  # ICMPv6 time exceeded
        (1, 0, 0, False),  # a local error
    ],
)
def test_which_icmp_errors_fail_a_send(origin: int, icmp_type: int, code: int, fails: bool) -> None:
    assert _fails_send(origin, icmp_type, code) is fails


@pytest_twisted.ensureDeferred
async def test_on_the_reactor_the_error_fails_the_invite_and_the_socket_stays_open(
    peer: socket.socket,
) -> None:
    """The reactor sees EPOLLERR alone, which it takes for the end of reading."""
    stray: defer.Deferred[Response] = defer.Deferred()

    class Tu(RecordingTU):
        def stray_response(self, response: Response, transport: Any, source: Any) -> None:
            stray.callback(response)

    stack = SipStack(Clock(), Tu())  # timers on a fake clock: nothing left on the reactor
    udp = UdpTransport(reactor, stack, Overload(0.2), LOCAL, 0)
    udp.start()
    try:
        user = User()
        invite = send(udp, "INVITE", (LOCAL, closed_port()), user)
        assert await user.first_failure.addTimeout(5, reactor) == "transport"
        await task.deferLater(reactor, 0)  # out of the transport's call, on the reactor again
        assert user.failed == [(invite, "transport")] and stack.client == {}
        # Still reading: a response nothing waits for reaches the TU.
        answer = Request("OPTIONS", "sip:x@127.0.0.1", invite.request.headers).response(200)
        peer.sendto(answer.to_bytes(), udp.local)
        assert (await stray.addTimeout(5, reactor)).status == 200
    finally:
        udp.stop()


# -- the transaction layer: which transactions a transport error ends --------------------------


def test_a_transport_error_ends_the_client_transactions_to_that_address_only() -> None:
    stack = SipStack(Clock(), RecordingTU())
    udp, other = FakeTransport(), FakeTransport()
    gone, there = (LOCAL, 5080), (LOCAL, 5090)
    user = User()

    def start(method: str, transport: FakeTransport, addr: tuple[str, int]) -> Any:
        return stack.send_request(request(method), transport, addr, user, (LOCAL, 5060))

    invite = start("INVITE", udp, gone)
    cancel = stack.cancel(invite, user)
    kept = [start("OPTIONS", udp, there), start("OPTIONS", other, gone)]
    stack.transport_error(udp, gone)
    assert user.failed == [(invite, "transport"), (cancel, "transport")]
    assert sorted(stack.client) == sorted(t.key for t in kept)
    assert stack.client_to == {there: {kept[0].key: kept[0]}, gone: {kept[1].key: kept[1]}}
    stack.transport_error(udp, gone)  # again: nothing left to fail
    assert len(user.failed) == 2


def test_an_invite_the_callee_has_answered_provisionally_outlives_an_icmp_error() -> None:
    """Figure 5 has no transport error in Proceeding: a stale or spoofed ICMP error
    about the callee's address must not end a call that is ringing there."""
    stack = SipStack(Clock(), RecordingTU())
    udp, user, there = FakeTransport(), User(), (LOCAL, 5080)
    invite = stack.send_request(request("INVITE"), udp, there, user, (LOCAL, 5060))
    invite.handle("provisional", invite.request.response(180, None, "callee"))
    stack.transport_error(udp, there)
    assert user.failed == [] and invite.state == "proceeding"


def test_a_user_that_fails_on_the_error_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception out of the transport's reader would make the reactor close the socket."""

    class Broken(User):
        def transaction_failed(self, txn: Any, reason: str) -> None:
            raise RuntimeError("late failure")

    stack = SipStack(Clock(), RecordingTU())
    udp, gone, user = FakeTransport(), (LOCAL, 5080), User()
    broken = stack.send_request(request("INVITE"), udp, gone, Broken(), (LOCAL, 5060))
    other = stack.send_request(request("OPTIONS"), udp, gone, user, (LOCAL, 5060))
    stack.transport_error(udp, gone)
    assert user.failed == [(other, "transport")]
    assert stack.client == {} and stack.client_to == {}
    assert f"transport error on {broken!r}" in caplog.messages


def test_the_index_by_address_empties_as_transactions_end() -> None:
    clock = Clock()
    stack = SipStack(clock, RecordingTU())
    udp = FakeTransport()
    txn = stack.send_request(request("OPTIONS"), udp, (LOCAL, 5080), User(), (LOCAL, 5060))
    txn.receive(txn.request.response(200))
    clock.advance(10)  # Timer K
    assert stack.client == {} and stack.client_to == {}


# -- the B2BUA: a forward to an address that is unreachable -----------------------------------

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234", "+3225551236"]
timezone: Europe/Brussels
routes:
  - name: failover
    when: {called: "+3225551234"}
    do:
      forward: "+3225550001"
      timeout: 30
      on_no_answer: {reject: 486}
      on_unreachable: {forward: "+3225550002"}
  - name: bare
    when: {called: "+3225551236"}
    do: {forward: "+3225550020", timeout: 30}
"""


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    (tmp_path / "acme.yaml").write_text(TREE)
    return Harness(tmp_path)


def test_an_unreachable_trunk_takes_on_unreachable_at_once(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551234"))
    first = only(h.to_trunk(), "INVITE")
    assert first.uri.startswith("sip:+3225550001@")
    h.stack.transport_error(h.trunk, TRUNK_ADDR)  # the ICMP error, read by the transport
    second = only(h.to_trunk(), "INVITE")
    assert second.uri.startswith("sip:+3225550002@")
    assert [(r.outcome, r.reason) for r in h.records.ended] == [("unreachable", "transport")]


def test_an_unreachable_trunk_without_a_handler_is_503_not_480(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    only(h.to_trunk(), "INVITE")
    h.stack.transport_error(h.trunk, TRUNK_ADDR)
    (final,) = [m for m in h.to_caller() if isinstance(m, Response) and m.status >= 200]
    assert (final.status, final.reason) == (503, "Destination Unreachable")


def test_a_datagram_the_stack_fails_on_is_logged_and_the_next_is_served(
    udp: UdpTransport, peer: socket.socket, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Out of doRead an exception would make Twisted drop the reader: UDP would go deaf."""
    receive = udp.stack.receive_datagram

    def fragile(data: bytes, *rest: Any) -> None:
        if b"z9hG4bK-boom" in data:
            raise RuntimeError("a bug the fuzz tests did not find")
        receive(data, *rest)

    monkeypatch.setattr(udp.stack, "receive_datagram", fragile)
    peer.sendto(request_bytes("OPTIONS", branch="z9hG4bK-boom"), udp.local)
    peer.sendto(request_bytes("OPTIONS", branch="z9hG4bK-fine"), udp.local)
    udp.doRead()  # both read in one batch; raises nothing
    assert [r.method for r in udp.stack.tu.requests] == ["OPTIONS"]  # type: ignore[attr-defined]
    assert "failed in the stack" in caplog.text and "a bug the fuzz" in caplog.text
    assert udp.stack.counters.malformed == 1


def test_a_send_to_an_address_no_socket_takes_is_counted_not_raised(udp: UdpTransport) -> None:
    udp.send(b"OPTIONS", (LOCAL, 99999))  # an rport out of range, say
    assert udp.send_errors == 1


def test_an_icmp_error_fails_only_the_transaction_whose_datagram_it_quotes() -> None:
    """Linux queues ICMP errors from anyone: the quoted branch picks the one transaction,
    and an error that quotes none of ours (spoofed, or cut short) fails nothing."""
    stack = SipStack(Clock(), RecordingTU())
    udp, user, there = FakeTransport(), User(), (LOCAL, 5080)
    first, second = (stack.send_request(request("OPTIONS"), udp, there, user, (LOCAL, 5060))
                     for _ in range(2))  # fmt: skip
    quoted = udp.sent[0][0][:200]
    branch = _quoted_branch(quoted)
    assert branch == first.key[0] != second.key[0]
    stack.transport_error(udp, there, branch)
    assert user.failed == [(first, "transport")]
    assert _quoted_branch(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1") is None
