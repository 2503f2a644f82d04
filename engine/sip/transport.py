"""SIP over UDP and TCP on Twisted: bytes in, bytes out, nothing else.

UDP is read by our own reactor reader rather than Twisted's ``udp.Port``:
it asks the kernel for the receive time of the first datagram of each batch
(SO_TIMESTAMP), which is how :class:`Overload` knows how long the oldest
waiting request has waited, and it sends with a bare ``sendto`` (Twisted's
``write`` re-validates the address on every call). Several engine processes
can share one port with SO_REUSEPORT. TCP connections are pooled by remote
address, both the ones peers open to us and the ones we open, so requests to
a peer reuse a live connection (RFC 3261 §18.1.1); idle ones are closed.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from engine.sip.overload import Overload
from engine.sip.parser import ParseError, StreamParser
from engine.sip.stack import SipStack

__all__ = ["TcpConnection", "TcpTransport", "UdpTransport", "listen_tcp"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
_DROP = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EHOSTUNREACH,
         errno.ENETUNREACH)  # fmt: skip
SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)
_TIMEVAL = struct.Struct("@ll")


def _socket(kind: int, host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        # Rebind over TIME_WAIT after a restart. Not for UDP: there it would let
        # a second engine silently take over a port that is in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@implementer(IReadDescriptor)
class UdpTransport:
    """One UDP socket, read in batches by the reactor; datagrams go to the stack."""

    reliable = False
    name = "UDP"
    #: Datagrams read per reactor wake-up before timers get their turn.
    BATCH = 64

    def __init__(
        self,
        reactor: Any,
        stack: SipStack,
        overload: Overload,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        receive_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        self.reactor = reactor
        self.stack = stack
        self.overload = overload
        self.sock = _socket(socket.SOCK_DGRAM, host, port, reuse_port)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self.local: Address = self.sock.getsockname()[:2]
        self.send_errors = 0

    def start(self) -> None:
        self.reactor.addReader(self)

    def stop(self) -> None:
        self.reactor.removeReader(self)
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "SIP/UDP"

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        self.sock.close()

    def doRead(self) -> None:  # noqa: N802
        sock = self.sock
        try:
            data, ancillary, _flags, addr = sock.recvmsg(65535, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ICMP errors surface here on Linux; nothing to read
            self.stack.ratelog.warning("udp-recv", "UDP receive error: %s", exc)
            return
        now = self.reactor.seconds()
        age = 0.0
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(raw) >= _TIMEVAL.size:
                sec, usec = _TIMEVAL.unpack_from(raw)
                age = now - (sec + usec / 1e6)
        overloaded = self.overload.note_queue_age(age, now)
        receive = self.stack.receive_datagram
        addr = addr[:2]
        receive(data, self, addr, overloaded)
        for _ in range(self.BATCH - 1):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            receive(data, self, addr[:2], overloaded)

    def send(self, data: bytes, addr: Address) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            self.send_errors += 1
            if exc.errno not in _DROP:
                self.stack.ratelog.warning("udp-send", "UDP send to %s:%s failed: %s",
                                           addr[0], addr[1], exc)  # fmt: skip


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
        self.open = False

    def connectionMade(self) -> None:  # noqa: N802
        peer = self.transport.getPeer()
        self.addr = (peer.host, peer.port)
        self.open = True
        self.last_used = self.pool.clock.seconds()
        self.pool.register(self)
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        pool = self.pool
        self.last_used = pool.clock.seconds()
        try:
            messages = self.parser.feed(data)
        except ParseError as exc:
            pool.stack.malformed(exc, self, self.addr)
            self.transport.loseConnection()
            return
        if self.parser.pings:
            self.transport.write(b"\r\n" * self.parser.pings)  # RFC 5626 pong
            self.parser.pings = 0
        overloaded = pool.overload.overloaded(self.last_used)
        for message in messages:
            pool.stack.receive(message, self, self.addr, overloaded)

    def send(self, data: bytes, addr: Address) -> None:
        self.last_used = self.pool.clock.seconds()
        if self.open:
            self.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.open = False
        self.pool.unregister(self)


class TcpTransport(protocol.Factory):
    """The pool of TCP connections, and the transport client transactions use."""

    reliable = True
    name = "TCP"

    def __init__(
        self, stack: SipStack, overload: Overload, reactor: Any, idle_timeout: float = 180.0
    ) -> None:
        self.stack = stack
        self.overload = overload
        self.reactor = reactor
        self.clock = stack.clock
        self.idle_timeout = idle_timeout
        self.connections: dict[Address, TcpConnection] = {}
        self.local: Address = ("", 0)
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
            if conn.open and conn.last_used < limit:
                conn.transport.loseConnection()


def listen_tcp(reactor: Any, pool: TcpTransport, host: str, port: int, reuse_port: bool) -> Any:
    """Listen for SIP over TCP (with SO_REUSEPORT when asked, via an adopted socket)."""
    sock = _socket(socket.SOCK_STREAM, host, port, reuse_port)
    sock.listen(1024)
    pool.local = sock.getsockname()[:2]
    listening = reactor.adoptStreamPort(sock.fileno(), sock.family, pool)
    sock.close()  # the reactor holds its own duplicate of the descriptor
    return listening


def loop_lag_monitor(reactor: Any, overload: Overload, interval: float = 0.1) -> Callable[[], None]:
    """Measure how late a periodic call runs; returns a function that stops it."""
    expected = [reactor.seconds() + interval]

    def tick() -> None:
        now = reactor.seconds()
        overload.note_loop_lag(max(0.0, now - expected[0]), now)
        expected[0] = now + interval

    loop = LoopingCall(tick)
    loop.clock = reactor
    loop.start(interval, now=False)
    return loop.stop
