"""SIP over UDP and TCP on Twisted: bytes in, bytes out, nothing else.

Received datagrams and framed stream messages go into the :class:`Ingress`
queue; the stack handles them from there. UDP sends go straight to the
socket (Twisted's ``write`` re-validates the address on every call, which
the hot path can do without). TCP connections are pooled by remote address,
both the ones peers open to us and the ones we open, so requests to a peer
reuse a live connection (RFC 3261 §18.1.1); connections idle longer than
``idle_timeout`` are closed.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from twisted.internet import protocol
from twisted.internet.task import LoopingCall

from engine.sip.ingress import Ingress
from engine.sip.parser import ParseError, StreamParser
from engine.sip.stack import SipStack

__all__ = ["TcpConnection", "TcpTransport", "UdpTransport"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
_DROP = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EHOSTUNREACH,
         errno.ENETUNREACH)  # fmt: skip


class UdpTransport(protocol.DatagramProtocol):
    """One UDP port. Every datagram is queued with its source for the stack."""

    reliable = False
    name = "UDP"

    def __init__(self, stack: SipStack, ingress: Ingress) -> None:
        self.stack = stack
        self.ingress = ingress
        self.sock: socket.socket | None = None
        self.send_errors = 0

    def startProtocol(self) -> None:  # noqa: N802 - Twisted's name
        self.transport.maxPacketSize = 65535
        self.sock = self.transport.socket

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # noqa: N802
        self.ingress.push((data, self, addr))

    def send(self, data: bytes, addr: Address) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            sock.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            if exc.errno not in _DROP:
                self.stack.ratelog.warning("udp-send", "UDP send to %s:%s failed: %s",
                                           addr[0], addr[1], exc)  # fmt: skip

    @property
    def local(self) -> Address:
        host = self.transport.getHost()
        return (host.host, host.port)


class TcpConnection(protocol.Protocol):
    """One TCP connection, either direction; frames messages out of the stream."""

    reliable = True
    name = "TCP"

    def __init__(self, pool: TcpTransport) -> None:
        self.pool = pool
        self.parser = StreamParser()
        self.addr: Address = ("", 0)
        self.last_used = 0.0
        self.pending: list[bytes] = []
        self.connected_ = False

    def connectionMade(self) -> None:  # noqa: N802
        peer = self.transport.getPeer()
        self.addr = (peer.host, peer.port)
        self.connected_ = True
        self.last_used = self.pool.clock.seconds()
        self.pool.register(self)
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.last_used = self.pool.clock.seconds()
        try:
            messages = self.parser.feed(data)
        except ParseError as exc:
            self.pool.stack.malformed(exc, self, self.addr)
            self.transport.loseConnection()
            return
        if self.parser.pings:
            self.transport.write(b"\r\n" * self.parser.pings)  # RFC 5626 pong
            self.parser.pings = 0
        for message in messages:
            self.pool.ingress.push((message, self, self.addr))

    def send(self, data: bytes, addr: Address) -> None:
        self.last_used = self.pool.clock.seconds()
        if self.connected_:
            self.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.connected_ = False
        self.pool.unregister(self)


class TcpTransport(protocol.Factory):
    """The pool of TCP connections, and the transport client transactions use."""

    reliable = True
    name = "TCP"

    def __init__(
        self, stack: SipStack, ingress: Ingress, reactor: Any, idle_timeout: float = 180.0
    ) -> None:
        self.stack = stack
        self.ingress = ingress
        self.reactor = reactor
        self.clock = stack.clock
        self.idle_timeout = idle_timeout
        self.connections: dict[Address, TcpConnection] = {}
        self._reaper = LoopingCall(self.close_idle)
        self._reaper.clock = reactor

    def buildProtocol(self, addr: Any) -> TcpConnection:  # noqa: N802
        return TcpConnection(self)

    def startFactory(self) -> None:  # noqa: N802
        if not self._reaper.running:
            self._reaper.start(max(1.0, self.idle_timeout / 4), now=False)

    def stopFactory(self) -> None:  # noqa: N802
        if self._reaper.running:
            self._reaper.stop()

    def register(self, conn: TcpConnection) -> None:
        self.connections[conn.addr] = conn

    def unregister(self, conn: TcpConnection) -> None:
        if self.connections.get(conn.addr) is conn:
            del self.connections[conn.addr]

    def send(self, data: bytes, addr: Address) -> None:
        """Send on the live connection to ``addr``, or open one."""
        conn = self.connections.get(addr)
        if conn is None:
            conn = self._connect(addr)
        conn.send(data, addr)

    def _connect(self, addr: Address) -> TcpConnection:
        conn = TcpConnection(self)
        conn.addr = addr
        self.connections[addr] = conn
        creator = protocol.ClientCreator(self.reactor, lambda: conn)
        d = creator.connectTCP(addr[0], addr[1], timeout=int(max(1, 64 * self.stack.t1)))
        d.addErrback(self._failed, conn, addr)
        return conn

    def _failed(self, failure: Any, conn: TcpConnection, addr: Address) -> None:
        self.unregister(conn)
        self.stack.ratelog.warning("tcp-connect", "TCP connection to %s:%d failed: %s",
                                   addr[0], addr[1], failure.getErrorMessage())  # fmt: skip
        self.stack.transport_error(self, addr)

    def close_idle(self) -> None:
        limit = self.clock.seconds() - self.idle_timeout
        for conn in list(self.connections.values()):
            if conn.connected_ and conn.last_used < limit:
                conn.transport.loseConnection()
