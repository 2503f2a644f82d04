"""The TCP pool on the real reactor: requests to a peer reuse its connection, idle ones close.

RFC 3261 §18.1.1: a request to a destination with an open connection goes
on it; the pool closes a connection nobody used for ``idle_timeout``. The
peer is a plain Twisted server on loopback counting its connections; the
pool's idea of time is a fake clock, advanced by hand, while the sockets are
real.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.task import Clock

from engine.sip.overload import Overload
from engine.sip.stack import SipStack
from engine.sip.transport import TcpTransport
from sipkit import RecordingTU, request_bytes

LOCAL = "127.0.0.1"


class Peer(protocol.Factory):
    """Counts connections and the bytes each brought; says when one closes."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.closed: defer.Deferred[None] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        peer = self
        data = bytearray()
        self.received.append(data)

        class Conn(protocol.Protocol):
            def dataReceived(self, chunk: bytes) -> None:
                data.extend(chunk)

            def connectionLost(self, reason: Any = None) -> None:
                if not peer.closed.called:
                    peer.closed.callback(None)

        return Conn()


async def _until(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await task.deferLater(reactor, 0.01)
    raise AssertionError("timed out")


@pytest_twisted.ensureDeferred
async def test_requests_to_a_peer_share_one_connection_until_it_idles() -> None:
    peer = Peer()
    port = reactor.listenTCP(0, peer, interface=LOCAL)
    clock = Clock()
    pool = TcpTransport(SipStack(clock, RecordingTU()), Overload(0.2), reactor, idle_timeout=30)
    address = (LOCAL, port.getHost().port)
    try:
        first = request_bytes("OPTIONS", branch="z9hG4bK-tcp-1", transport="TCP")
        second = request_bytes("OPTIONS", branch="z9hG4bK-tcp-2", transport="TCP")
        pool.send(first, address)
        pool.send(second, address)  # before the connection is even up: it waits for it
        await _until(lambda: peer.received and len(peer.received[0]) == len(first + second))
        clock.advance(20)
        pool.send(first, address)  # still within the idle timeout: the same connection
        await _until(lambda: len(peer.received[0]) == len(first + second + first))
        assert len(peer.received) == 1
        pool.close_idle()  # used 0 s ago: kept
        clock.advance(31)
        pool.close_idle()  # unused for 31 s: closed, and forgotten by the pool
        await peer.closed.addTimeout(5, reactor)
        await _until(lambda: address not in pool.connections)
        pool.send(second, address)  # the next request opens a new one
        await _until(lambda: len(peer.received) == 2 and bytes(peer.received[1]) == second)
    finally:
        for conn in list(pool.connections.values()):
            if conn.open:
                conn.transport.loseConnection()
        await port.stopListening()
