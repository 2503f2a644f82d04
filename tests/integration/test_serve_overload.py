"""Overload: a burst of INVITEs far beyond what the engine answers in time.

The server runs with ``sip.overload.max_delay_ms: 1``: an INVITE that waited
more than a millisecond is refused with 503 and Retry-After instead of being
routed late. A raw socket sends a few thousand INVITEs (distinct branches)
without waiting, then behaves as an RFC 3261 client would: it retransmits
every INVITE still unanswered (the kernel drops datagrams when the server's
receive buffer is full) until each has its final response.

What can be asserted on any machine, however loaded:

- every INVITE ends with a final response, and that response is a 302 (to
  the right Contact) or a 503 with the configured Retry-After;
- some are 503 (a millisecond is far less than thousands of INVITEs take);
- an OPTIONS sent right behind the burst gets 200 (only INVITEs are refused);
- a retransmission of an answered INVITE gets that same answer, byte for
  byte, whether it was a 302 or a 503 (the transaction, not a new decision);
- the server recovers: a new INVITE afterwards gets a 302 (polled: the
  bound is tiny, so a lone INVITE may still meet a late moment).

T1 is set to 1 s so that Timer H (64·T1) keeps the unacknowledged answers
for a minute, well beyond the test.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from vmskit import (
    TRUNK,
    ServeFactory,
    Server,
    UdpPeer,
    ack_for,
    contacts,
    parse,
    request,
    tree,
)

pytestmark = pytest.mark.integration

NUMBER, DESK = "+3225550900", "+3225550901"
BURST = 3000
RETRY_AFTER = "7"
BRANCH = re.compile(rb"\r\nVia:[^\r]*;branch=([^;,\s]+)", re.I)


@dataclass
class Collector:
    """Reads the socket on a thread: every datagram, and the first final per branch."""

    sock: socket.socket
    finals: dict[bytes, bytes] = field(default_factory=dict)
    log: list[tuple[float, bytes, bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            match = BRANCH.search(data)
            branch = match.group(1) if match else b""
            self.log.append((time.monotonic(), branch, data))
            if data[8:9] != b"1" and branch not in self.finals:  # "SIP/2.0 1xx" is provisional
                self.finals[branch] = data

    def wait_for(self, branch: bytes, timeout: float) -> float:
        """When the first final for ``branch`` came (polled until ``timeout``)."""
        deadline = time.monotonic() + timeout
        while branch not in self.finals:
            assert time.monotonic() < deadline, f"no answer for {branch!r} within {timeout} s"
            time.sleep(0.01)
        return next(t for t, b, _ in self.log if b == branch)


@pytest.fixture
def collector() -> Iterator[Collector]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, 16 * 1024 * 1024)
            break
        except OSError:
            continue
    sock.bind(("127.0.0.1", 0))
    collector = Collector(sock)
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    yield collector
    collector.stop.set()
    thread.join(5)
    sock.close()


def test_a_burst_is_answered_302_or_503_and_the_engine_recovers(
    serve: ServeFactory, collector: Collector
) -> None:
    routes = f'  - name: desk\n    do: {{forward: "{DESK}"}}\n'
    unlimited = {"rate": 100_000, "burst": 100_000}  # this test is about overload, not floods
    server: Server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], sip={
        "overload": {"max_delay_ms": 1, "retry_after": int(RETRY_AFTER)},
        "timers": {"t1": 1.0},
    }, extra={"floods": {"per_number": unlimited, "per_source": unlimited}})  # fmt: skip
    sock, local = collector.sock, collector.sock.getsockname()[:2]
    invites = {}
    for i in range(BURST):
        data = request("INVITE", NUMBER, server.sip, local, branch=f"z9hG4bK-burst-{i}")
        invites[f"z9hG4bK-burst-{i}".encode()] = data
    # An OPTIONS in the thick of it: overload refuses new INVITEs only.
    options = {b"z9hG4bK-burst-options": request("OPTIONS", NUMBER, server.sip, local,
                                                 branch="z9hG4bK-burst-options")}  # fmt: skip
    for data in invites.values():  # as fast as the socket takes them
        sock.sendto(data, server.sip)
    sock.sendto(options[b"z9hG4bK-burst-options"], server.sip)

    # Retransmit what is unanswered, every 0.5 s (Timer A's T1), until all is answered.
    deadline = time.monotonic() + 30
    requests = invites | options
    while missing := [b for b in requests if b not in collector.finals]:
        assert time.monotonic() < deadline, f"{len(missing)} of {BURST} INVITEs never answered"
        time.sleep(0.5)
        for branch in missing:
            if branch not in collector.finals:
                sock.sendto(requests[branch], server.sip)
    assert parse(collector.finals[b"z9hG4bK-burst-options"]).status == 200

    answers = {branch: parse(collector.finals[branch]) for branch in invites}
    statuses = {branch: a.status for branch, a in answers.items()}
    assert set(statuses.values()) <= {302, 503}, sorted(set(statuses.values()))
    refused = [b for b, s in statuses.items() if s == 503]
    served = [b for b, s in statuses.items() if s == 302]
    assert refused, f"no INVITE of {BURST} was refused with a bound of 1 ms"
    assert all(answers[b].get("retry-after") == RETRY_AFTER for b in refused)
    trunk_contact = [f"<sip:{DESK}@{TRUNK[0]}:{TRUNK[1]}>"]
    assert all(contacts(answers[b]) == trunk_contact for b in served)

    # Acknowledge all but a sample of each kind, which keep their transactions.
    sample = served[:10] + refused[:10]
    for branch, data in invites.items():
        if branch not in sample:
            sock.sendto(ack_for(data, answers[branch]), server.sip)

    # The engine recovers: a new INVITE gets its 302 again. (One may still be
    # refused, or even dropped while the ACKs are read: then another is sent.)
    recovered = time.monotonic() + 20
    with UdpPeer() as peer:
        while True:
            assert time.monotonic() < recovered, "no 302 within twenty seconds of the burst"
            try:
                invite, response = peer.invite(NUMBER, server.sip, timeout=1.0)
            except AssertionError:
                continue  # unanswered: lost in a full receive buffer
            peer.send(ack_for(invite, response), server.sip)
            if response.status == 302:
                break
            assert response.status == 503, response.start
            time.sleep(0.2)
    assert contacts(response) == trunk_contact

    # The sample sent again: the original answers, byte for byte. The probe
    # is answered after them, so everything up to its answer is theirs.
    start = time.monotonic()
    for branch in sample:
        sock.sendto(invites[branch], server.sip)
    probe = request("OPTIONS", NUMBER, server.sip, local, branch="z9hG4bK-probe")
    sock.sendto(probe, server.sip)
    until = collector.wait_for(b"z9hG4bK-probe", timeout=10)
    for branch in sample:
        again = [data for t, b, data in list(collector.log) if b == branch and start <= t <= until]
        assert again, f"the retransmitted INVITE {branch!r} was not answered"
        assert set(again) == {collector.finals[branch]}, (statuses[branch], again)
    for branch in sample:
        sock.sendto(ack_for(invites[branch], answers[branch]), server.sip)
    assert server.proc.poll() is None
